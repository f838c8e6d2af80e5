import IdeficsTokenizer
import XCTest

final class Idefics2PromptTests: XCTestCase {
    private let fake = Idefics2Prompt.fakeToken, image = Idefics2Prompt.imageToken

    func testEachImageBecomesItsTokensBetweenFakeTokens() throws {
        let text = try Idefics2Prompt.expand("User:<image>What?", imageCount: 1, imageSequenceLength: 2, splitImages: false)
        XCTAssertEqual(text, "User:\(fake)\(image)\(image)\(fake)What?")
    }

    func testAdjacentImagesShareTheFakeTokenBetweenThem() throws {
        let text = try Idefics2Prompt.expand("<image><image>x", imageCount: 2, imageSequenceLength: 1, splitImages: false)
        XCTAssertEqual(text, "\(fake)\(image)\(fake)\(image)\(fake)x", "no space is inserted after a block, unlike transformers 5")
    }

    func testSplitImagesRepeatTheBlockFiveTimes() throws {
        let text = try Idefics2Prompt.expand("<image>", imageCount: 1, imageSequenceLength: 1, splitImages: true)
        XCTAssertEqual(text, String(repeating: "\(fake)\(image)", count: 5) + fake)
    }

    func testPlaceholderAndImageCountsMustAgree() {
        XCTAssertThrowsError(try Idefics2Prompt.expand("<image> and <image>", imageCount: 1, imageSequenceLength: 4, splitImages: false)) {
            XCTAssertEqual("\($0)", "the prompt has 2 <image> placeholders but 1 image was given")
        }
        XCTAssertThrowsError(try Idefics2Prompt.expand("no image", imageCount: 2, imageSequenceLength: 4, splitImages: false)) {
            XCTAssertEqual("\($0)", "the prompt has 0 <image> placeholders but 2 images were given")
        }
    }
}
