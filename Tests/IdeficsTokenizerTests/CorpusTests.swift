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
        assertAll(Reference.corpus.encode) { entry in
            let ids = tokenizer.encode(entry.text)
            if ids != entry.ids { return "encode(\(shown(entry.text))) = \(ids), expected \(entry.ids)" }
            let plain = tokenizer.encode(entry.text, addSpecialTokens: false)
            if plain != entry.idsNoSpecial {
                return "encode(\(shown(entry.text)), addSpecialTokens: false) = \(plain), expected \(entry.idsNoSpecial)"
            }
            return nil
        }
    }

    func testDecodeMatchesReference() {
        assertAll(Reference.corpus.encode) { entry in
            decodeMismatch(entry.ids, entry.decoded, entry.decodedSkip)
        }
    }

    func testDecodeOfArbitraryIdsMatchesReference() {
        assertAll(Reference.corpus.decode) { entry in decodeMismatch(entry.ids, entry.text, entry.textSkip) }
    }

    func testStreamingConcatenationEqualsDecode() {
        assertAll(Reference.corpus.encode) { entry in
            for skip in [false, true] {
                let expected = tokenizer.decode(entry.ids, skipSpecialTokens: skip)
                let streamed = stream(entry.ids, skipSpecialTokens: skip)
                if !sameText(streamed, expected) {
                    return "streaming \(entry.ids) (skip: \(skip)) gave \(shown(streamed)), decode gives \(shown(expected))"
                }
            }
            return nil
        }
    }

    private func decodeMismatch(_ ids: [Int], _ text: String, _ textSkip: String) -> String? {
        let decoded = tokenizer.decode(ids)
        if !sameText(decoded, text) { return "decode(\(ids)) = \(shown(decoded)), expected \(shown(text))" }
        let skipped = tokenizer.decode(ids, skipSpecialTokens: true)
        if !sameText(skipped, textSkip) {
            return "decode(\(ids), skipSpecialTokens: true) = \(shown(skipped)), expected \(shown(textSkip))"
        }
        return nil
    }

    private func stream(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var detokenizer = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: skipSpecialTokens)
        return ids.map { detokenizer.append($0) }.joined() + detokenizer.flush()
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
                first = "corpus.jsonl line \(corpusLine): \(problem)"
            }
        }
        if let first {
            XCTFail("\(failures) of \(cases.count) corpus entries differ; first: \(first)", file: file, line: line)
        }
    }
}
