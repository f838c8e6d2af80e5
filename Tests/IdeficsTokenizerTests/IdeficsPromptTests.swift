import IdeficsTokenizer
import XCTest

/// Idefics v1's processor rules (transformers' processing_idefics.py), case by case.
final class IdeficsPromptTests: XCTestCase {
    func testTextItemsThatAreURLsAsUrlparseReadsThem() {
        XCTAssertEqual(IdeficsPrompt.url("https://host/a.png"), "https://host/a.png")
        XCTAssertEqual(IdeficsPrompt.url("  https://host/a.png "), "https://host/a.png") // strip(" ") first
        XCTAssertEqual(IdeficsPrompt.url("\nhttps://host/a\t.png"), "https://host/a.png") // urlsplit drops these
        for text in ["User:", "a https://host/a.png", "file:///tmp/a.png", "data:image/png;base64,AAAA", "1:2", "http:/x",
                     "https://", "-x://host"] {
            XCTAssertNil(IdeficsPrompt.url(text), text)
        }
    }

    func testPromptTextSharesFakeTokensAndAddsEndOfUtteranceBetweenTexts() {
        let items: [IdeficsPrompt.Item] = [.text(" User: hi "), .text("Assistant:"), .image, .image, .text("\nx")]
        XCTAssertEqual(IdeficsPrompt.text(items, addEndOfUtterance: false),
                       "<s>User: hiAssistant:<fake_token_around_image><image><fake_token_around_image><image>"
                           + "<fake_token_around_image>\nx")
        XCTAssertEqual(IdeficsPrompt.text(items, addEndOfUtterance: true),
                       "<s>User: hi<end_of_utterance>Assistant:<fake_token_around_image><image><fake_token_around_image>"
                           + "<image><fake_token_around_image>\nx")
    }

    func testImageAttentionFollowsTheLastImageUntilAnEndOfSequence() {
        // ids: 9 text, 5 <image>, 2 </s>
        let ids = [9, 5, 9, 2, 9, 5, 9, 5, 2, 9]
        XCTAssertEqual(IdeficsPrompt.attendedImages(ids, imageTokenId: 5, eosTokenId: 2),
                       [nil, 0, 0, 0, nil, 1, 1, 2, 2, nil])
    }

    func testPromptsSplitAtPlaceholders() throws {
        XCTAssertEqual(try IdeficsPrompt.items(splitting: "a<image><image>b<image>", imageCount: 3),
                       [.text("a"), .image, .image, .text("b"), .image])
        XCTAssertThrowsError(try IdeficsPrompt.items(splitting: "a<image>", imageCount: 2)) {
            XCTAssertEqual("\($0)", "the prompt has 1 <image> placeholder but 2 images were given")
        }
    }
}
