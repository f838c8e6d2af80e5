import IdeficsTokenizer
import TestSupport
import XCTest

/// Byte offsets of every token (TGI's /tokenize `start`/`stop`) against the `tokenizers` library's on every text
/// of the corpus (offsets.jsonl, scripts/make_tokenizer_offsets.py): spaces, the prepended `▁`, byte-fallback
/// characters, added tokens and the BOS the template adds.
final class OffsetTests: XCTestCase {
    func testOffsetsMatchTheTokenizersLibrary() throws {
        let cases = try Fixtures.jsonLines("tokenizer/offsets.jsonl")
        XCTAssertGreaterThanOrEqual(cases.count, 400)
        var differing = [String]()
        for entry in cases {
            let text = entry["text"] as! String
            let spans = Reference.tokenizer.encodeWithOffsets(text)
            let expected = (entry["offsets"] as! [[Int]]).map { $0[0]..<$0[1] }
            if spans.map(\.id) != entry["ids"] as! [Int] || spans.map(\.bytes) != expected {
                differing.append("\(shown(text)): \(spans.map { "\($0.id)@\($0.bytes.map { "\($0)" } ?? "nil")" }) expected \(expected)")
            }
        }
        XCTAssertTrue(differing.isEmpty, "\(differing.count) of \(cases.count) differ; first: \(differing.prefix(3))")
    }
}
