import IdeficsTokenizer

extension StreamingDetokenizer: IncrementalTextDecoder {}
