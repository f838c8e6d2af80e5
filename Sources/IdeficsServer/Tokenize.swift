import Foundation
import Idefics

/// TGI's `POST /tokenize`: the ids the model would see for `inputs` (markdown images expanded to their image
/// tokens, as many as the checkpoint gives an image, without fetching them), each with its byte range in `inputs`
/// and that text. An image's tokens all point at its `![](...)`; BOS points at nothing (0, 0). Where the text cannot
/// be aligned with the tokens, every token gets an empty text at (0, 0), as TGI answers without offsets.
struct TokenizeAnswer {
    struct Token {
        let id: Int
        let text: String
        let start: Int
        let stop: Int
    }

    let tokens: [Token]

    /// A stretch of the expanded prompt and the bytes of `inputs` it came from.
    private struct Piece {
        let expanded: Range<Int>
        let original: Range<Int>
        let image: Bool
    }

    init(inputs: String, pipeline: Pipeline, addSpecialTokens: Bool, truncate: Int?) throws(ServerError) {
        let original = Array(inputs.utf8)
        var pieces = [Piece](), expanded = [UInt8]()
        let fake = Array(Idefics2Prompt.fakeToken.utf8)
        for (range, image) in Routes.markdownChunks(original) {
            var bytes = Array(original[range])
            if image {
                guard let idefics2 = pipeline.idefics2, let processor = pipeline.imageProcessor else {
                    throw .validation("this model takes no images: `inputs` has `![](...)`")
                }
                // One placeholder, one image: expand cannot refuse it.
                bytes = Array(((try? Idefics2Prompt.expand(Idefics2Prompt.imageToken, imageCount: 1,
                                                           imageSequenceLength: idefics2.imageSequenceLength,
                                                           splitImages: processor.config.doImageSplitting)) ?? "").utf8)
                // Adjacent images share one fake token, as the processor collapses them.
                if expanded.count >= fake.count, expanded.suffix(fake.count).elementsEqual(fake), bytes.starts(with: fake) {
                    bytes.removeFirst(fake.count)
                }
            }
            pieces.append(Piece(expanded: expanded.count..<expanded.count + bytes.count, original: range, image: image))
            expanded += bytes
        }
        var spans = pipeline.tokenizer.encodeWithOffsets(String(decoding: expanded, as: UTF8.self),
                                                         addSpecialTokens: addSpecialTokens)
        if let truncate, spans.count > truncate { spans.removeFirst(spans.count - truncate) }
        guard spans.allSatisfy({ $0.bytes != nil }) else {
            tokens = spans.map { Token(id: $0.id, text: "", start: 0, stop: 0) }
            return
        }
        tokens = spans.map { span in
            let range = Self.original(span.bytes!, pieces: pieces)
            return Token(id: span.id, text: String(decoding: original[range], as: UTF8.self), start: range.lowerBound,
                         stop: range.upperBound)
        }
    }

    /// The bytes of `inputs` behind a range of the expanded prompt: the whole `![](...)` for an image's tokens,
    /// the same text shifted for the rest; an empty range (BOS) stays where it is, 0..<0 at the start.
    private static func original(_ bytes: Range<Int>, pieces: [Piece]) -> Range<Int> {
        if bytes == 0..<0 { return bytes } // what the template adds
        guard let piece = pieces.first(where: { $0.expanded.contains(bytes.lowerBound) })
            ?? pieces.last(where: { bytes.isEmpty && $0.expanded.upperBound == bytes.lowerBound }) else { return 0..<0 }
        if piece.image { return piece.original }
        let shift = piece.original.lowerBound - piece.expanded.lowerBound
        return bytes.lowerBound + shift..<bytes.upperBound + shift
    }

    var json: [[String: Any]] {
        tokens.map { ["id": $0.id, "text": $0.text, "start": $0.start, "stop": $0.stop] }
    }
}
