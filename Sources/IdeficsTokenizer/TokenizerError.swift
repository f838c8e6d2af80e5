import Foundation

/// Everything that can go wrong while loading tokenizer files. Every case names the file so that a caller
/// loading several checkpoints can tell which one is broken.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// The file could not be read from disk.
    case unreadable(file: String, reason: String)
    /// The file is not JSON, or its top level is not an object.
    case invalidJSON(file: String, reason: String)
    /// A required field is absent; `path` is dotted, e.g. "model.vocab".
    case missingField(file: String, path: String)
    /// A field is present but has the wrong JSON type or an impossible value.
    case invalidValue(file: String, path: String, reason: String)
    /// A component (normalizer, pre-tokenizer, model, post-processor, decoder) of a type this engine does not
    /// implement, or an option of it that it does not implement.
    case unsupported(file: String, path: String, what: String)
    /// The folder has a tokenizer only in a format this engine does not read (`tokenizer.model` without
    /// `tokenizer.json`); `remedy` says how to convert it.
    case unsupportedFormat(file: String, remedy: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot read file: \(reason)"
        case let .invalidJSON(file, reason):
            return "\(file): not a valid JSON object: \(reason)"
        case let .missingField(file, path):
            return "\(file): missing \"\(path)\""
        case let .invalidValue(file, path, reason):
            return "\(file): invalid \"\(path)\": \(reason)"
        case let .unsupported(file, path, what):
            return "\(file): unsupported \(what) at \"\(path)\""
        case let .unsupportedFormat(file, remedy):
            return "\(file): \(remedy)"
        }
    }
}

extension TokenizerError: LocalizedError {
    public var errorDescription: String? { description }
}
