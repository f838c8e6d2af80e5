/// The BPE `model` of tokenizer.json, with the semantics of `tokenizers`' `models/bpe` (byte fallback, unknown-token
/// fusing, ignore_merges). Strings are kept as UTF-8 bytes so lookups are byte-exact.
struct BPE: Sendable {
    /// Token bytes to id, and the reverse.
    let vocab: [[UInt8]: Int]
    let tokens: [Int: [UInt8]]
    /// Ids of single-scalar tokens keyed by scalar value: the per-character lookup of every encode.
    private let scalarIds: [UInt32: Int32]
    /// Ids of the `<0xXX>` byte tokens, when byte fallback is on and the vocabulary has them.
    private let byteIds: [Int32?]
    /// (left id, right id) packed into 64 bits -> (rank, merged id).
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    let unknownId: Int?
    private let fuseUnknown: Bool
    private let byteFallback: Bool
    private let ignoreMerges: Bool

    init(json node: JSONNode) throws {
        guard try node.typeTag() == "BPE" else { throw node.unsupported("model type \"\(try node.typeTag())\"") }
        for option in ["continuing_subword_prefix", "end_of_word_suffix"] where try node.optional(option) != nil {
            throw try node.required(option).unsupported("BPE option")
        }
        if let dropout = try node.optional("dropout"), (dropout.value as? Double ?? 0) != 0 {
            throw dropout.unsupported("BPE dropout (non-deterministic)")
        }

        let vocabNode = try node.required("vocab")
        var vocab: [[UInt8]: Int] = [:]
        var tokens: [Int: [UInt8]] = [:]
        for (token, value) in try vocabNode.object() {
            guard let id = JSONNode.integer(value), id >= 0 else {
                throw vocabNode.invalid("id of \"\(token)\" is not a non-negative integer")
            }
            let bytes = Array(token.utf8)
            vocab[bytes] = id
            tokens[id] = bytes
        }
        self.vocab = vocab
        self.tokens = tokens

        var scalarIds: [UInt32: Int32] = [:]
        for (bytes, id) in vocab {
            let scalars = UTF8Text.scalars(bytes[...])
            if scalars.count == 1, let scalar = scalars.first { scalarIds[scalar.value] = Int32(id) }
        }
        self.scalarIds = scalarIds

        byteFallback = try node.bool("byte_fallback", default: false)
        byteIds = (0..<256).map { byte in
            vocab[Array("<0x\(hex(UInt8(byte)))>".utf8)].map(Int32.init)
        }
        fuseUnknown = try node.bool("fuse_unk", default: false)
        ignoreMerges = try node.bool("ignore_merges", default: false)

        if let unkNode = try node.optional("unk_token") {
            guard let id = vocab[Array(try unkNode.string().utf8)] else {
                throw unkNode.invalid("unknown token is not in model.vocab")
            }
            unknownId = id
        } else {
            unknownId = nil
        }

        merges = try Self.parseMerges(node.required("merges"), vocab: vocab)
    }

    /// Merges come as `[["a", "b"], ...]` (current format) or `["a b", ...]` (legacy); rank is the position.
    private static func parseMerges(_ node: JSONNode, vocab: [[UInt8]: Int]) throws -> [UInt64: (rank: Int32, id: Int32)] {
        guard let entries = node.value as? [Any] else { throw node.invalid("expected an array") }
        var merges: [UInt64: (rank: Int32, id: Int32)] = [:]
        merges.reserveCapacity(entries.count)
        var rank: Int32 = 0
        for (index, entry) in entries.enumerated() {
            let pair: [String]
            if let strings = entry as? [String], strings.count == 2 {
                pair = strings
            } else if let line = entry as? String {
                if line.hasPrefix("#version") { continue }
                pair = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                guard pair.count == 2 else { throw node.invalid("merge \(index) \"\(line)\" is not two tokens") }
            } else {
                throw node.invalid("merge \(index) is neither \"a b\" nor [\"a\", \"b\"]")
            }
            let left = Array(pair[0].utf8), right = Array(pair[1].utf8)
            guard let leftId = vocab[left], let rightId = vocab[right], let mergedId = vocab[left + right] else {
                throw node.invalid("merge \(index) (\"\(pair[0])\", \"\(pair[1])\") uses a token missing from model.vocab")
            }
            // A repeated pair keeps its last rank, as a Rust HashMap collected from the list does.
            merges[UInt64(leftId) << 32 | UInt64(rightId)] = (rank, Int32(mergedId))
            rank += 1
        }
        return merges
    }

    /// Encodes one pre-tokenized word.
    func tokenize(_ word: [UInt8]) -> [Int] {
        if word.isEmpty { return [] }
        if ignoreMerges, let id = vocab[word] { return [id] }
        var symbols = initialSymbols(word)
        symbols.mergeAll(using: merges)
        return symbols.ids
    }

    /// One symbol per character, falling back to byte tokens, then to the unknown token (fused if asked).
    private func initialSymbols(_ word: [UInt8]) -> SymbolList {
        var symbols = SymbolList(capacity: word.count)
        var pendingUnknown: (id: Int32, length: Int32)?
        word.withUnsafeBufferPointer { bytes in
            var index = 0
            while index < bytes.count {
                let (value, length) = UTF8Text.scalar(in: bytes, at: index)
                defer { index += length }
                if let id = scalarIds[value] {
                    if let unknown = pendingUnknown {
                        symbols.append(unknown.id, length: unknown.length)
                        pendingUnknown = nil
                    }
                    symbols.append(id, length: Int32(length))
                    continue
                }
                if byteFallback {
                    let ids = bytes[index..<index + length].compactMap { byteIds[Int($0)] }
                    if ids.count == length {
                        // Like tokenizers, a pending unknown token is not flushed here (it can only arise
                        // when some byte tokens are missing from the vocabulary).
                        for id in ids { symbols.append(id, length: 1) }
                        continue
                    }
                }
                guard let unknownId else { continue }  // no unknown token: the character is dropped
                if let unknown = pendingUnknown {
                    if fuseUnknown {
                        pendingUnknown = (unknown.id, unknown.length + Int32(length))
                        continue
                    }
                    symbols.append(unknown.id, length: unknown.length)
                }
                pendingUnknown = (Int32(unknownId), Int32(length))
            }
        }
        if let unknown = pendingUnknown { symbols.append(unknown.id, length: unknown.length) }
        return symbols
    }
}

/// Two upper-case hex digits, as in `<0x0A>`.
func hex(_ byte: UInt8) -> String {
    let digits = Array("0123456789ABCDEF")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
}
