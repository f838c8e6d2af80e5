import Foundation
import IdeficsFiles

/// A position inside a parsed JSON document that remembers its file and dotted path, so that every accessor
/// can throw a `TokenizerError` saying exactly which field is wrong.
struct JSONNode {
    let value: Any
    let path: String
    let file: String

    /// Parses a whole file; the top level must be an object.
    static func load(_ url: URL) throws -> JSONNode {
        let file = url.lastPathComponent
        let data: Data
        do {
            data = try InputFile.data(at: url.path)
        } catch let error as InputFileError {
            throw TokenizerError.unreadable(file: file, reason: error.reason)
        }
        let object: Any
        do {
            object = try InputFile.json(escapingByteOrderMarks(data))
        } catch let error as JSONError {
            throw TokenizerError.invalidJSON(file: file, reason: error.reason)
        }
        guard object is [String: Any] else {
            throw TokenizerError.invalidJSON(file: file, reason: "top level is not an object")
        }
        return JSONNode(value: object, path: "", file: file)
    }

    /// Foundation's JSONSerialization silently drops U+FEFF when a string starts with it raw (Mistral's vocabulary
    /// has a "\u{FEFF}" token), but keeps it when written as the escape `\ufeff`. Raw U+FEFF can only occur
    /// inside strings of a JSON text (a leading one is an encoding mark and is dropped), so escaping every
    /// occurrence is safe.
    private static func escapingByteOrderMarks(_ data: Data) -> Data {
        let mark: [UInt8] = [0xEF, 0xBB, 0xBF]
        var bytes = [UInt8](data)
        if bytes.starts(with: mark) { bytes.removeFirst(3) }
        return Data(UTF8Text.replacing(mark, with: Array("\\ufeff".utf8), in: bytes))
    }

    private func childPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func invalid(_ reason: String) -> TokenizerError {
        .invalidValue(file: file, path: path, reason: reason)
    }

    /// The child at `key`, or nil when it is absent or JSON null (tokenizer.json uses both for "none").
    func optional(_ key: String) throws -> JSONNode? {
        guard let child = try object()[key], !(child is NSNull) else { return nil }
        return JSONNode(value: child, path: childPath(key), file: file)
    }

    func required(_ key: String) throws -> JSONNode {
        guard let child = try optional(key) else { throw TokenizerError.missingField(file: file, path: childPath(key)) }
        return child
    }

    func object() throws -> [String: Any] {
        guard let object = value as? [String: Any] else { throw invalid("expected an object") }
        return object
    }

    func array() throws -> [JSONNode] {
        guard let array = value as? [Any] else { throw invalid("expected an array") }
        return array.enumerated().map { JSONNode(value: $1, path: "\(path)[\($0)]", file: file) }
    }

    func string() throws -> String {
        guard let string = value as? String else { throw invalid("expected a string") }
        return string
    }

    /// JSONSerialization returns numbers and booleans both as NSNumber (which casts to Bool and Int alike);
    /// booleans alone have this dynamic type.
    private static let booleanType = type(of: NSNumber(value: true) as Any)
    private var isBoolean: Bool { type(of: value) == JSONNode.booleanType }

    func bool() throws -> Bool {
        guard isBoolean, let bool = value as? Bool else { throw invalid("expected a boolean") }
        return bool
    }

    func int() throws -> Int {
        guard let int = Self.integer(value) else { throw invalid("expected an integer") }
        return int
    }

    /// An integral JSON number as Int; nil for booleans, fractions and non-numbers. Static so bulk parsing
    /// (tens of thousands of vocabulary entries) need not wrap each value in a node.
    static func integer(_ value: Any) -> Int? {
        guard type(of: value) != booleanType, let number = value as? NSNumber else { return nil }
        return Int(exactly: number.doubleValue)
    }

    /// A single Unicode scalar, as serde's `char` fields (Metaspace replacement, Strip content) require.
    func scalar() throws -> Unicode.Scalar {
        let text = try string()
        guard text.unicodeScalars.count == 1, let scalar = text.unicodeScalars.first else {
            throw invalid("expected a single character")
        }
        return scalar
    }

    func bool(_ key: String, default fallback: Bool) throws -> Bool {
        try optional(key)?.bool() ?? fallback
    }

    /// The "type" tag that selects a component's variant.
    func typeTag() throws -> String { try required("type").string() }

    func unsupported(_ what: String) -> TokenizerError {
        .unsupported(file: file, path: path, what: what)
    }
}
