import Foundation

/// The `normalizer` of tokenizer.json: rewrites each stretch of text between added tokens before the model sees it.
enum Normalizer: Sendable {
    case sequence([Normalizer])
    case prepend([UInt8])
    case replace(pattern: [UInt8], content: [UInt8])
    case unicode(UnicodeForm)
    case lowercase
    case strip(left: Bool, right: Bool)

    enum UnicodeForm: Sendable { case nfc, nfd, nfkc, nfkd }

    init(json node: JSONNode) throws {
        switch try node.typeTag() {
        case "Sequence":
            self = .sequence(try node.required("normalizers").array().map(Normalizer.init(json:)))
        case "Prepend":
            self = .prepend(Array(try node.required("prepend").string().utf8))
        case "Replace":
            self = .replace(pattern: try stringPattern(node.required("pattern")),
                            content: Array(try node.required("content").string().utf8))
        case "NFC": self = .unicode(.nfc)
        case "NFD": self = .unicode(.nfd)
        case "NFKC": self = .unicode(.nfkc)
        case "NFKD": self = .unicode(.nfkd)
        case "Lowercase": self = .lowercase
        case "Strip":
            self = .strip(left: try node.bool("strip_left", default: true),
                          right: try node.bool("strip_right", default: true))
        case let other:
            throw node.unsupported("normalizer type \"\(other)\"")
        }
    }

    func normalize(_ text: [UInt8]) -> [UInt8] {
        switch self {
        case let .sequence(normalizers):
            return normalizers.reduce(text) { $1.normalize($0) }
        case let .prepend(prefix):
            return text.isEmpty ? text : prefix + text
        case let .replace(pattern, content):
            return UTF8Text.replacing(pattern, with: content, in: text)
        case let .unicode(form):
            let string = String(decoding: text, as: UTF8.self)
            switch form {
            case .nfc: return Array(string.precomposedStringWithCanonicalMapping.utf8)
            case .nfd: return Array(string.decomposedStringWithCanonicalMapping.utf8)
            case .nfkc: return Array(string.precomposedStringWithCompatibilityMapping.utf8)
            case .nfkd: return Array(string.decomposedStringWithCompatibilityMapping.utf8)
            }
        case .lowercase:
            // Per scalar, like Rust's `char::to_lowercase` (so no final-sigma context rule).
            return Array(UTF8Text.scalars(text[...]).map { $0.properties.lowercaseMapping }.joined().utf8)
        case let .strip(left, right):
            let scalars = Array(UTF8Text.scalars(text[...]))
            var start = 0, end = scalars.count
            if left { while start < end && UTF8Text.isWhitespace(scalars[start]) { start += 1 } }
            if right { while end > start && UTF8Text.isWhitespace(scalars[end - 1]) { end -= 1 } }
            return UTF8Text.bytes(scalars[start..<end])
        }
    }
}

/// `{"String": "..."}` patterns; `{"Regex": ...}` would need Rust regex semantics, which are not reproduced here.
func stringPattern(_ node: JSONNode) throws -> [UInt8] {
    if let literal = try node.optional("String") {
        let pattern = Array(try literal.string().utf8)
        guard !pattern.isEmpty else { throw literal.invalid("must not be empty") }
        return pattern
    }
    if try node.optional("Regex") != nil { throw node.unsupported("Regex pattern") }
    throw TokenizerError.missingField(file: node.file, path: "\(node.path).String")
}
