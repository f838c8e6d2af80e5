/// Which bytes of the input each token stands for, as the `tokenizers` library's (Rust, byte) offsets give them
/// for Metaspace-style vocabularies like Mistral's and LLaMA's: `▁` is a space (or a typed `▁`); the `▁` the
/// normalizer prepends to each stretch of text is zero-width, and alone it covers the character after it; a
/// byte-fallback token (`<0xE6>`) covers its whole character; tokens the template adds (BOS) cover nothing, (0, 0).
extension Tokenizer {
    public struct TokenSpan: Sendable, Equatable {
        public let id: Int
        /// Byte offsets into the UTF-8 text; nil when the text cannot be aligned with the tokens (a normalizer that
        /// rewrites the text, say), as `tokenizers` leaves offsets out.
        public let bytes: Range<Int>?
    }

    /// The bytes a token stands for on its own: a vocabulary token's with `▁` as a space and `<0xNN>` as its byte,
    /// an added token's content (OpenAI's `bytes` of a token; its text may end inside a character).
    public func pieceBytes(_ id: Int) -> [UInt8] {
        guard let token = tokenBytes(id) else { return [] }
        if addedVocabulary.tokens[id] != nil { return token }
        return Self.fallbackByte(token).map { [$0] } ?? UTF8Text.replacing(Self.metaspace, with: [0x20], in: token)
    }

    /// `encode(text)` with each token's byte range in `text`.
    public func encodeWithOffsets(_ text: String, addSpecialTokens: Bool = true) -> [TokenSpan] {
        let pieces = pieces(of: text)
        let ranges = align(pieces, to: Array(text.utf8))
        let spans = pieces.indices.map { TokenSpan(id: pieces[$0].id, bytes: ranges?[$0]) }
        guard addSpecialTokens, let template else { return spans }
        return template.apply(to: spans) { TokenSpan(id: $0, bytes: ranges == nil ? nil : 0..<0) }
    }

    private func align(_ pieces: [(id: Int, added: Bool)], to input: [UInt8]) -> [Range<Int>]? {
        var ranges = [Range<Int>](), cursor = 0, stretchStart = true
        for piece in pieces {
            guard var token = tokenBytes(piece.id) else { return nil }
            if !piece.added {
                if let byte = Self.fallbackByte(token) { token = [byte] }
                // The normalizer's `▁` at the start of a stretch is not in the input.
                if stretchStart, token.starts(with: Self.metaspace) { token.removeFirst(Self.metaspace.count) }
            }
            stretchStart = piece.added
            guard !token.isEmpty else {
                ranges.append(cursor..<Self.characterEnd(after: cursor, in: input))
                continue
            }
            guard let end = Self.match(token, in: input, at: cursor, metaspace: !piece.added) else { return nil }
            ranges.append(Self.widenedToCharacters(cursor..<end, in: input))
            cursor = end
        }
        return ranges
    }

    private static let metaspace = Array("▁".utf8)

    /// Where `token` ends if the input holds it at `start`: byte for byte, a `▁` standing for a space or itself.
    private static func match(_ token: [UInt8], in input: [UInt8], at start: Int, metaspace allowed: Bool) -> Int? {
        var (t, i) = (0, start)
        while t < token.count {
            if allowed, token[t...].starts(with: metaspace), i < input.count, input[i] == 0x20 {
                (t, i) = (t + metaspace.count, i + 1)
            } else if i < input.count, input[i] == token[t] {
                (t, i) = (t + 1, i + 1)
            } else {
                return nil
            }
        }
        return i
    }

    /// The byte of a `<0xNN>` byte-fallback token.
    private static func fallbackByte(_ token: [UInt8]) -> UInt8? {
        guard token.count == 6, token.starts(with: Array("<0x".utf8)), token.last == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: token[3..<5], as: UTF8.self), radix: 16)
    }

    private static func isContinuation(_ byte: UInt8) -> Bool { byte & 0xC0 == 0x80 }

    private static func characterEnd(after index: Int, in input: [UInt8]) -> Int {
        guard index < input.count else { return index }
        var end = index + 1
        while end < input.count, isContinuation(input[end]) { end += 1 }
        return end
    }

    private static func widenedToCharacters(_ range: Range<Int>, in input: [UInt8]) -> Range<Int> {
        var (start, end) = (range.lowerBound, range.upperBound)
        while start > 0, isContinuation(input[start]) { start -= 1 }
        while end < input.count, isContinuation(input[end]) { end += 1 }
        return start..<end
    }
}
