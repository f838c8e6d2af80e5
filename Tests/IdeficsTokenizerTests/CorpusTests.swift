import IdeficsTokenizer
import XCTest

/// Every corpus entry must match the `tokenizers` reference exactly; failures name the first mismatching entry.
final class CorpusTests: XCTestCase {
    private let tokenizer = Reference.tokenizer

    func testCorpusIsSubstantial() {
        XCTAssertGreaterThanOrEqual(Reference.corpus.encode.count, 400)
        XCTAssertGreaterThanOrEqual(Reference.corpus.decode.count, 20)
    }

    func testEncodeMatchesReference() {
        assertAll(Reference.corpus.encode) { encodeMismatch(tokenizer, $0) }
    }

    func testDecodeMatchesReference() {
        assertAll(Reference.corpus.encode) { decodeMismatch(tokenizer, $0.ids, $0.decoded, $0.decodedSkip) }
    }

    func testDecodeOfArbitraryIdsMatchesReference() {
        assertAll(Reference.corpus.decode) { decodeMismatch(tokenizer, $0.ids, $0.text, $0.textSkip) }
    }

    func testStreamingConcatenationEqualsDecode() {
        assertAll(Reference.corpus.encode) { streamingMismatch(tokenizer, $0.ids) }
    }

    func testVariantMetaspaceFirst() throws { try checkVariant("metaspace_first") }
    func testVariantMetaspaceSplit() throws { try checkVariant("metaspace_split") }
    func testVariantSplitBehaviors() throws { try checkVariant("split_behaviors") }

    /// Encode, decode and streaming of one variant tokenizer against its recorded corpus.
    private func checkVariant(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let variant = try Reference.variant(name)
        let cases = Reference.variantCorpus.filter { $0.tokenizer == name }
        XCTAssertGreaterThan(cases.count, 100, file: file, line: line)
        assertAll(cases, file: file, line: line) { entry in
            encodeMismatch(variant, entry) ?? decodeMismatch(variant, entry.ids, entry.decoded, entry.decodedSkip)
                ?? streamingMismatch(variant, entry.ids)
        }
    }

    private func encodeMismatch(_ tokenizer: Tokenizer, _ entry: Reference.EncodeCase) -> String? {
        let ids = tokenizer.encode(entry.text)
        if ids != entry.ids { return "encode(\(shown(entry.text))) = \(ids), expected \(entry.ids)" }
        let plain = tokenizer.encode(entry.text, addSpecialTokens: false)
        if plain != entry.idsNoSpecial {
            return "encode(\(shown(entry.text)), addSpecialTokens: false) = \(plain), expected \(entry.idsNoSpecial)"
        }
        return nil
    }

    private func decodeMismatch(_ tokenizer: Tokenizer, _ ids: [Int], _ text: String, _ textSkip: String) -> String? {
        let decoded = tokenizer.decode(ids)
        if !sameText(decoded, text) { return "decode(\(ids)) = \(shown(decoded)), expected \(shown(text))" }
        let skipped = tokenizer.decode(ids, skipSpecialTokens: true)
        if !sameText(skipped, textSkip) {
            return "decode(\(ids), skipSpecialTokens: true) = \(shown(skipped)), expected \(shown(textSkip))"
        }
        return nil
    }

    /// The pieces a StreamingDetokenizer returns, plus its flush, must concatenate to `decode`.
    private func streamingMismatch(_ tokenizer: Tokenizer, _ ids: [Int]) -> String? {
        for skip in [false, true] {
            var detokenizer = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: skip)
            let streamed = ids.map { detokenizer.append($0) }.joined() + detokenizer.flush()
            let expected = tokenizer.decode(ids, skipSpecialTokens: skip)
            if !sameText(streamed, expected) {
                return "streaming \(ids) (skip: \(skip)) gave \(shown(streamed)), decode gives \(shown(expected))"
            }
        }
        return nil
    }

    /// Runs `check` on every case; reports how many failed and the first failure in full.
    private func assertAll<Case>(_ cases: [Case], file: StaticString = #filePath, line: UInt = #line,
                                 _ check: (Case) -> String?) {
        var failures = 0
        var first: String?
        for (index, entry) in cases.enumerated() {
            guard let problem = check(entry) else { continue }
            failures += 1
            if first == nil {
                let corpusLine = (entry as? Reference.EncodeCase)?.line ?? (entry as? Reference.DecodeCase)?.line ?? index
                first = "line \(corpusLine): \(problem)"
            }
        }
        if let first {
            XCTFail("\(failures) of \(cases.count) corpus entries differ; first: \(first)", file: file, line: line)
        }
    }
}
