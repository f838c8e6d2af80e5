import IdeficsTokenizer
import XCTest

final class StreamingTests: XCTestCase {
    private let tokenizer = Reference.tokenizer

    private func pieces(_ ids: [Int], skipSpecialTokens: Bool = false) -> [String] {
        var detokenizer = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: skipSpecialTokens)
        return ids.map { detokenizer.append($0) } + [detokenizer.flush()]
    }

    func testWordsKeepTheirSpacesButNotTheFirstOne() {
        let ids = tokenizer.encode("Hello big world", addSpecialTokens: false)
        XCTAssertEqual(pieces(ids).filter { !$0.isEmpty }, ["Hello", " big", " world"])
    }

    func testByteFallbackCharacterIsHeldUntilComplete() {
        let ids = tokenizer.encode("I 🦜 you", addSpecialTokens: false)
        XCTAssertGreaterThan(ids.count, 4, "the parrot emoji is expected to use byte-fallback tokens")
        let streamed = pieces(ids)
        XCTAssertFalse(streamed.contains { $0.unicodeScalars.contains("\u{FFFD}") })
        XCTAssertTrue(streamed.contains { $0.contains("🦜") })
        XCTAssertEqual(streamed.joined(), "I 🦜 you")
    }

    func testCombiningMarkArrivingLaterIsEmitted() {
        // "e" then U+0301: Character counts do not grow, scalar counts do.
        let ids = tokenizer.encode("e\u{301}\u{301}", addSpecialTokens: false)
        XCTAssertTrue(sameText(pieces(ids).joined(), "e\u{301}\u{301}"))
    }

    func testSkippingSpecialTokens() {
        let ids = tokenizer.encode("User:<image>What is this?<end_of_utterance>\nAssistant: A cat.")
        XCTAssertEqual(pieces(ids, skipSpecialTokens: true).joined(), tokenizer.decode(ids, skipSpecialTokens: true))
        XCTAssertEqual(pieces(ids).joined(), tokenizer.decode(ids))
    }

    func testFlushReturnsAnIncompleteSequence() {
        var detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        XCTAssertEqual(detokenizer.append(3 + 0xC3), "")
        XCTAssertEqual(detokenizer.flush(), "\u{FFFD}")
    }
}
