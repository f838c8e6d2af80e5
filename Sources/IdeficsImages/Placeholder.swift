// IdeficsImages: see the module's files.
