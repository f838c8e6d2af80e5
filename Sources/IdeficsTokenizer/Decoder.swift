/// The `decoder` of tokenizer.json: turns the token strings of a sequence back into text. Like tokenizers, each
/// step maps a list of token strings to a new list, and the final list is concatenated.
enum Decoder: Sendable {
    case sequence([Decoder])
    case replace(pattern: [UInt8], content: [UInt8])
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case metaspace(replacement: Unicode.Scalar, prependScheme: PreTokenizer.PrependScheme)

    init(json node: JSONNode) throws {
        switch try node.typeTag() {
        case "Sequence":
            self = .sequence(try node.required("decoders").array().map(Decoder.init(json:)))
        case "Replace":
            self = .replace(pattern: try stringPattern(node.required("pattern")),
                            content: Array(try node.required("content").string().utf8))
        case "ByteFallback": self = .byteFallback
        case "Fuse": self = .fuse
        case "Strip":
            self = .strip(content: try node.required("content").scalar(), start: try node.required("start").int(),
                          stop: try node.required("stop").int())
        case "Metaspace":
            self = .metaspace(replacement: try node.required("replacement").scalar(),
                              prependScheme: try PreTokenizer.prependScheme(node))
        case let other:
            throw node.unsupported("decoder type \"\(other)\"")
        }
    }

    func decode(_ tokens: [[UInt8]]) -> String {
        String(decoding: Array(decodeChain(tokens).joined()), as: UTF8.self)
    }

    private func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]] {
        switch self {
        case let .sequence(decoders):
            return decoders.reduce(tokens) { $1.decodeChain($0) }
        case let .replace(pattern, content):
            return tokens.map { UTF8Text.replacing(pattern, with: content, in: $0) }
        case .byteFallback:
            return Self.byteFallback(tokens)
        case .fuse:
            return [Array(tokens.joined())]
        case let .strip(content, start, stop):
            return tokens.map { token in
                let scalars = Array(UTF8Text.scalars(token[...]))
                let head = scalars.prefix(start).prefix { $0 == content }.count
                let tail = scalars.dropFirst(head).suffix(stop).reversed().prefix { $0 == content }.count
                return UTF8Text.bytes(scalars[head..<scalars.count - tail])
            }
        case let .metaspace(replacement, prependScheme):
            return tokens.enumerated().map { index, token in
                let dropReplacement = index == 0 && prependScheme != .never
                return UTF8Text.bytes(UTF8Text.scalars(token[...]).compactMap { scalar -> Unicode.Scalar? in
                    guard scalar == replacement else { return scalar }
                    return dropReplacement ? nil : " "
                })
            }
        }
    }

    /// Runs of `<0xXX>` tokens become their bytes when those form valid UTF-8, else one U+FFFD per byte.
    private static func byteFallback(_ tokens: [[UInt8]]) -> [[UInt8]] {
        var output: [[UInt8]] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if String(validating: pending, as: UTF8.self) != nil {
                output.append(pending)
            } else {
                output.append(contentsOf: repeatElement(Array("\u{FFFD}".utf8), count: pending.count))
            }
            pending.removeAll()
        }
        for token in tokens {
            if let byte = byteValue(token) {
                pending.append(byte)
            } else {
                flush()
                output.append(token)
            }
        }
        flush()
        return output
    }

    /// The byte of a `<0xXX>` token (either hex case, as Rust's `from_str_radix` accepts).
    static func byteValue(_ token: [UInt8]) -> UInt8? {
        guard token.count == 6, token.starts(with: Array("<0x".utf8)), token[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: token[3..<5], as: UTF8.self), radix: 16)
    }
}
