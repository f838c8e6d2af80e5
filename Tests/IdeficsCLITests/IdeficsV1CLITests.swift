import Foundation
import TestSupport
import XCTest

/// `idefics generate` on an Idefics v1 checkpoint: the family comes from config.json; `--items` takes the processor's
/// item list (a list of lists is a batch, `--json` one object per row and line); `--prompt` is split at `<image>`.
/// Token ids are transformers' (tests/Fixtures/models/tiny-idefics-perceiver/reference.json).
final class IdeficsV1CLITests: XCTestCase {
    let model = Fixtures.url("models/tiny-idefics-perceiver")
    let images = Fixtures.url("vision/images")

    func reference() throws -> [String: [String: Any]] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: model.appendingPathComponent("reference.json")))
        let cases = (json as! [String: Any])["cases"] as! [[String: Any]]
        return Dictionary(uniqueKeysWithValues: cases.map { ($0["name"] as! String, $0) })
    }

    /// The case's items with image files made absolute, as a JSON value.
    func items(_ c: [String: Any]) -> [Any] {
        (c["items"] as! [Any]).map { item in
            guard let image = item as? [String: String] else { return item }
            return ["image": images.appendingPathComponent(image["image"]!).path]
        }
    }

    func write(_ value: Any) throws -> String {
        let file = try temporaryDirectory().appendingPathComponent("items.json")
        try JSONSerialization.data(withJSONObject: value).write(to: file)
        return file.path
    }

    func rows(_ stdout: String) throws -> [[String: Any]] {
        try stdout.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    func testItemsPromptsAndBatchesGiveTransformersTokens() throws {
        let cases = try reference()
        let greedy = ["--model", model.path, "--max-new-tokens", "8", "--json"]
        for name in ["dialogue", "end_of_utterance", "eos_inside"] {
            let c = cases[name]!
            let flag = c["add_end_of_utterance_token"] as! Bool ? ["--add-end-of-utterance-token"] : []
            let result = try CLI.run(["generate", "--items", try write(items(c))] + greedy + flag)
            XCTAssertEqual(result.status, 0, result.stderr)
            let row = try rows(result.stdout)
            XCTAssertEqual(row.count, 1, name)
            XCTAssertEqual(row[0]["prompt_token_ids"] as? [Int], c["input_ids"] as? [Int], name)
            // The checkpoint's generation_config (eos 2 and 32002, no <image> or fake token) changes nothing here.
            XCTAssertEqual(row[0]["generated_token_ids"] as? [Int], c["greedy_tokens"] as? [Int], name)
        }
        let batch = ["one_image", "text_only", "consecutive_images"]
        let result = try CLI.run(["generate", "--items", try write(batch.map { items(cases[$0]!) })] + greedy)
        XCTAssertEqual(result.status, 0, result.stderr)
        let printed = try rows(result.stdout)
        XCTAssertEqual(printed.map { $0["prompt_token_ids"] as! [Int] }, batch.map { cases[$0]!["input_ids"] as! [Int] })
        XCTAssertEqual(printed.map { $0["generated_token_ids"] as! [Int] }, batch.map { cases[$0]!["greedy_tokens"] as! [Int] })
        // --prompt: split at <image> into the same items.
        let split = try CLI.run(["generate", "--prompt", "User:<image> and then <image>What differs?\nAssistant:",
                                 "--image", images.appendingPathComponent("chelsea_150x90.png").path,
                                 "--image", images.appendingPathComponent("coffee_70x70.png").path] + greedy)
        XCTAssertEqual(split.status, 0, split.stderr)
        XCTAssertEqual(try rows(split.stdout)[0]["prompt_token_ids"] as? [Int],
                       cases["two_images_text_between"]!["input_ids"] as? [Int])
        XCTAssertEqual(try rows(split.stdout)[0]["generated_token_ids"] as? [Int],
                       cases["two_images_text_between"]!["greedy_tokens"] as? [Int])
    }

    /// Idefics2 takes items too: joined with an `<image>` placeholder per image, as its processor takes text and images.
    func testItemsForIdefics2AreItsPromptWithPlaceholders() throws {
        let idefics2 = Fixtures.url("models/tiny-f32").path, image = images.appendingPathComponent("coffee_70x70.png").path
        let greedy = ["--model", idefics2, "--max-new-tokens", "4", "--json"]
        let items = try CLI.run(["generate", "--items", try write(["User:", ["image": image], "What is this?"])] + greedy)
        let prompt = try CLI.run(["generate", "--prompt", "User:<image>What is this?", "--image", image] + greedy)
        XCTAssertEqual(items.status, 0, items.stderr)
        XCTAssertEqual(prompt.status, 0, prompt.stderr)
        let (a, b) = (try rows(items.stdout)[0], try rows(prompt.stdout)[0])
        XCTAssertEqual(a["prompt_token_ids"] as? [Int], b["prompt_token_ids"] as? [Int])
        XCTAssertEqual(a["generated_token_ids"] as? [Int], b["generated_token_ids"] as? [Int])
        XCTAssertEqual((a["prompt_token_ids"] as! [Int]).filter { $0 == 32001 }.count, 4) // tiny-f32's 4 latents
    }

    func testBadItemsAndMisplacedOptionsAreRefusedByName() throws {
        let base = ["generate", "--model", model.path, "--max-new-tokens", "1"]
        let notList = try write(["text": "hi"])
        try CLI.assertRefused(base + ["--items", notList], "\(notList): must be a non-empty JSON list of items (or of item lists)")
        let badItem = try write(["hi", ["picture": "a.png"]])
        try CLI.assertRefused(base + ["--items", badItem],
                              "\(badItem): the list, item 1: an item is a string or {\"image\": PATH_OR_URL}")
        let emptyRow = try write([["hi"], []])
        try CLI.assertRefused(base + ["--items", emptyRow], "\(emptyRow): row 1 is empty")
        try CLI.assertRefused(base + ["--items", emptyRow, "--prompt", "hi"], status: 64,
                              "give one of --prompt, --prompt-file and --items")
        try CLI.assertRefused(base + ["--items", emptyRow, "--chat"], status: 64, "--items holds the whole prompt")
        try CLI.assertRefused(base + ["--prompt", "<image><image>", "--image", images.appendingPathComponent("coffee_70x70.png").path],
                              "the prompt has 2 <image> placeholders but 1 image was given")
        try CLI.assertRefused(base + ["--prompt", "hi", "--chat", "--add-end-of-utterance-token"], status: 64,
                              "--add-end-of-utterance-token is for --prompt and --items")
        try CLI.assertRefused(base + ["--prompt", "hi", "--image-splitting"],
                              "Idefics v1 resizes every image to its vision tower's square")
        let idefics2 = Fixtures.url("models/tiny-f32").path
        try CLI.assertRefused(["generate", "--model", idefics2, "--prompt", "hi", "--add-end-of-utterance-token"],
                              "--add-end-of-utterance-token is an Idefics v1 processor option")
    }
}
