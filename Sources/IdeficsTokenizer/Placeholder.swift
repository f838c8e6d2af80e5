// IdeficsTokenizer: see the module's files.
