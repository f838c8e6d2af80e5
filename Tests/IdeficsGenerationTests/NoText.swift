import IdeficsGeneration

/// A text decoder for tests that compare token ids only.
struct NoText: IncrementalTextDecoder {
    mutating func append(_ id: Int) -> String { "" }
    mutating func flush() -> String { "" }
}
