// IdeficsGeneration: see the module's files.
