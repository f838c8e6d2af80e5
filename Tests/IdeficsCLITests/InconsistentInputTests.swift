import Foundation
import TestSupport
import XCTest

/// Class 2: inputs that would run and answer something meaningless are refused instead.
final class InconsistentInputTests: XCTestCase {
    /// With another image_token_id than the tokenizer's `<image>`, the images would never reach the model.
    func testImageTokenIdThatIsNotTheTokenizersImageTokenIsRefused() throws {
        let folder = try temporaryDirectory()
        let model = try CLI.demoCopy(in: folder, edits: ["config.json": { $0["image_token_id"] = 5 }])
        try CLI.assertRefused(["generate", "--model", model.path, "--prompt", "hi"],
                              "config.json: image_token_id is 5 but tokenizer.json gives <image> the id")
    }

    func testAnEmptyEvaluationSetIsAnErrorNotZeroPercent() throws {
        let folder = try temporaryDirectory()
        let data = folder.appendingPathComponent("empty.jsonl")
        try Data("\n  \n".utf8).write(to: data)
        try CLI.assertRefused(["eval", "--data", data.path], "\(data.path) holds no evaluation items: nothing to evaluate")
    }

    /// Line numbers count blank lines; CRLF line ends are line ends.
    func testEvaluationLinesAreNumberedAndCRLFIsALineEnd() throws {
        let folder = try temporaryDirectory()
        let data = folder.appendingPathComponent("bad.jsonl")
        let item = #"{"image": "Examples/shapes-1.png", "question": "q", "answer": "a", "type": "t"}"#
        try Data("\(item)\r\n\r\n[1, 2]\r\n".utf8).write(to: data)
        try CLI.assertRefused(["eval", "--data", data.path], "\(data.path):3: not an {image, question, answer, type} object")
    }

    func testMoreOrFewerImagesThanPlaceholdersIsRefused() throws {
        try CLI.assertRefused(["generate", "--prompt", "<image><image> What is this?", "--image", CLI.exampleImage],
                              "the prompt has 2 <image> placeholders but 1 image was given")
    }
}
