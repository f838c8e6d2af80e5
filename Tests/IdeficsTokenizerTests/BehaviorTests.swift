import IdeficsTokenizer
import XCTest

/// Documented quirks and API details of the Idefics2 tokenizer, spelled out rather than buried in the corpus.
final class BehaviorTests: XCTestCase {
    private let tokenizer = Reference.tokenizer

    func testTextAfterSpecialTokenGetsItsOwnPrependedSpace() {
        // The normalizer runs per piece between added tokens, so "\n" becomes "▁\n" = [28705, 13].
        XCTAssertEqual(tokenizer.encode("<end_of_utterance>\n", addSpecialTokens: false), [32002, 28705, 13])
        XCTAssertEqual(tokenizer.encode("User:<image>What is this?<end_of_utterance>\nAssistant:"),
                       [1, 1247, 28747, 32001, 1824, 349, 456, 28804, 32002, 28705, 13, 7226, 11143, 28747])
    }

    func testBOSIsAddedOnlyWithSpecialTokens() {
        XCTAssertEqual(tokenizer.encode(""), [1])
        XCTAssertEqual(tokenizer.encode("", addSpecialTokens: false), [])
        XCTAssertEqual(tokenizer.encode("Hello"), [1] + tokenizer.encode("Hello", addSpecialTokens: false))
    }

    func testSpecialTokenIdsAndVocabulary() {
        XCTAssertEqual(tokenizer.bosTokenId, 1)
        XCTAssertEqual(tokenizer.eosTokenId, 2)
        XCTAssertEqual(tokenizer.padTokenId, 0)
        XCTAssertEqual(tokenizer.unknownTokenId, 0)
        XCTAssertEqual(tokenizer.specialTokenIds, [0, 1, 2, 32000, 32001, 32002])
        XCTAssertEqual(tokenizer.vocabularySize, 32003)
        XCTAssertEqual(tokenizer.tokenToId("<image>"), 32001)
        XCTAssertEqual(tokenizer.tokenToId("<fake_token_around_image>"), 32000)
        XCTAssertEqual(tokenizer.tokenToId("<0x0A>"), 13)
        XCTAssertEqual(tokenizer.idToToken(28705), "▁")
        XCTAssertEqual(tokenizer.idToToken(32002), "<end_of_utterance>")
        XCTAssertNil(tokenizer.tokenToId("<not a token>"))
        XCTAssertNil(tokenizer.idToToken(32003))
    }

    func testLookupsAreByteExactNotCanonicallyEquivalent() {
        // Swift's String == says "é" == "e\u{301}"; the vocabulary must not.
        let composed = tokenizer.encode("é", addSpecialTokens: false)
        let decomposed = tokenizer.encode("e\u{301}", addSpecialTokens: false)
        XCTAssertNotEqual(composed, decomposed)
        XCTAssertTrue(sameText(tokenizer.decode(decomposed), "e\u{301}"))
    }

    func testDecodeSkipsSpecialTokensAndStripsOneLeadingSpace() {
        // "Hi" after <image> was encoded as "▁Hi", so it decodes with a space (as in tokenizers).
        let ids = tokenizer.encode("User:<image>Hi<end_of_utterance>")
        XCTAssertEqual(tokenizer.decode(ids), "<s> User:<image> Hi<end_of_utterance>")
        XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), "User: Hi")
        XCTAssertEqual(tokenizer.decode([28705, 28705, 13]), " \n")
    }

    func testInvalidByteSequencesDecodeToOneReplacementPerByte() {
        let byte = { (value: Int) in 3 + value }  // <0x00> is id 3
        XCTAssertEqual(tokenizer.decode([byte(0xC3), byte(0xA9)]), "é")
        XCTAssertEqual(tokenizer.decode([byte(0xC3), byte(0xA9), byte(0x80)]), "\u{FFFD}\u{FFFD}\u{FFFD}")
        XCTAssertEqual(tokenizer.decode([byte(0xE4), byte(0xB8), 1526]), "\u{FFFD}\u{FFFD} world")
    }

    /// A long text with no added token is a single BPE word; this checks it encodes and round-trips (the merge
    /// queue is O(n log n)). Not a timing assertion.
    func testHundredKilobyteTextRoundTrips() {
        let paragraph = "Idefics2 answers questions about images, 1234567 times; naïve café — 日本語 🙂\n"
        let text = String(repeating: paragraph, count: 100_000 / paragraph.utf8.count + 1)
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        XCTAssertLessThan(ids.count, text.utf8.count / 2)
        XCTAssertTrue(sameText(tokenizer.decode(ids), text))
        XCTAssertEqual(ids, tokenizer.encode(text + "<image>", addSpecialTokens: false).dropLast())
    }
}
