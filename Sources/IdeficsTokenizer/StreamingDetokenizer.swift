/// Turns a stream of generated ids into text pieces as soon as they are final, with the prefix/read offset
/// technique of TGI and transformers' TextStreamer: decode a small window of recent ids with and without the new
/// ones, and emit the difference once it does not end in U+FFFD (an incomplete UTF-8 sequence of byte-fallback
/// tokens). Decoding the window together with the previous piece's ids keeps context-dependent decoding (the
/// leading-space strip, byte runs) consistent with decoding everything at once.
///
/// For ids produced by `encode`, the pieces returned by `append` followed by `flush()` concatenate to
/// `decode(allIds)`. Byte-fallback runs that are invalid UTF-8 can differ in how many U+FFFD appear, since
/// `decode` replaces each byte of a run that later turns out invalid, after its valid start was emitted.
public struct StreamingDetokenizer: Sendable {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    /// The ids still needed: those of the last emitted piece (`..<readOffset`) and those not yet emitted.
    private var ids: [Int] = []
    private var readOffset = 0

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the text it completes ("" when nothing is final yet).
    public mutating func append(_ id: Int) -> String {
        ids.append(id)
        return emit(force: false)
    }

    /// Returns whatever is still held back (e.g. an incomplete byte sequence, shown as U+FFFD).
    public mutating func flush() -> String {
        emit(force: true)
    }

    private mutating func emit(force: Bool) -> String {
        let previous = tokenizer.decode(Array(ids[..<readOffset]), skipSpecialTokens: skipSpecialTokens)
        let current = tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens)
        // Compare scalars, not Characters: a combining mark extends the previous Character without adding one.
        let previousCount = previous.unicodeScalars.count
        let scalars = current.unicodeScalars
        guard scalars.count > previousCount, force || scalars.last != "\u{FFFD}" else { return "" }
        var piece = String.UnicodeScalarView()
        piece.append(contentsOf: scalars.dropFirst(previousCount))
        ids.removeFirst(readOffset)
        readOffset = ids.count
        return String(piece)
    }
}
