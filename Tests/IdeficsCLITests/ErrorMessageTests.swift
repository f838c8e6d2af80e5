import Foundation
import TestSupport
import XCTest

/// Class 4: every message names the thing it concerns and the reason in plain words (no Foundation internals), and
/// the chat's commands and prompt inputs behave as documented.
final class ErrorMessageTests: XCTestCase {
    private let generate = ["generate", "--max-new-tokens", "1", "--prompt", "<image>Describe."]

    func testImageReferencesNameTheProblem() throws {
        let folder = try temporaryDirectory()
        try CLI.assertRefused(generate + ["--image", "ftp://example.com/a.png"],
                              "ftp://example.com/a.png: ftp:// URLs are not supported: give a file path, an http(s) URL or a data: URI")
        try CLI.assertRefused(generate + ["--image", "/nonexistent/a.png"], "/nonexistent/a.png: No such file or directory")
        try CLI.assertRefused(generate + ["--image", folder.path], "\(folder.path): is a folder, not a file")
        try CLI.assertRefused(generate + ["--image", "data:image/png,abc"], "data URI: data URI is not base64-encoded")
        let viaFileURL = try CLI.run(generate + ["--image", "file://" + CLI.exampleImage])
        XCTAssertEqual(viaFileURL.status, 0, viaFileURL.stderr)
    }

    func testInputFilesNameTheProblem() throws {
        let folder = try temporaryDirectory()
        try CLI.assertRefused(["eval", "--data", "/nonexistent/eval.jsonl"], "/nonexistent/eval.jsonl: No such file or directory")
        try CLI.assertRefused(["eval", "--data", folder.path], "\(folder.path): is a folder, not a file")
        let latin1 = folder.appendingPathComponent("prompt.txt")
        try Data([0x63, 0x61, 0x66, 0xE9]).write(to: latin1)
        try CLI.assertRefused(["generate", "--prompt-file", latin1.path], "\(latin1.path): is not valid UTF-8 text")
        try CLI.assertRefused(["generate", "--prompt", "a", "--prompt-file", latin1.path], status: 64,
                              "give one of --prompt, --prompt-file and --items")
    }

    /// A truncated JSON file is named with the parser's plain reason; a weight file that is a pipe is refused at once
    /// (opening it for reading would wait forever for a writer).
    func testCheckpointFilesThatAreNotJSONOrNotRegularFilesNameTheProblem() throws {
        let truncated = try CLI.demoCopy(in: try temporaryDirectory())
        let config = truncated.appendingPathComponent("config.json")
        try FileManager.default.removeItem(at: config)
        try Data(#"{"model_type": "idefics2", "text_config": {"#.utf8).write(to: config)
        try CLI.assertRefused(["generate", "--model", truncated.path, "--prompt", "hi"],
                              "\(config.path): invalid JSON: Unexpected end of file during JSON parse.")

        let piped = try CLI.demoCopy(in: try temporaryDirectory())
        let shard = piped.appendingPathComponent("model-00002-of-00002.safetensors")
        try FileManager.default.removeItem(at: shard)
        XCTAssertEqual(mkfifo(shard.path, 0o600), 0)
        try CLI.assertRefused(["generate", "--model", piped.path, "--prompt", "hi"],
                              "\(shard.path)", "is not a regular file (a pipe or a device)", timeout: 30)
    }

    /// Swift would silently turn invalid UTF-8 in an argument into U+FFFD and answer a different prompt.
    func testInvalidUTF8InAnArgumentIsRefused() throws {
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", #"exec "$0" generate --prompt "caf$(printf '\351')""#, CLI.binary.path]
        let err = Pipe()
        shell.standardError = err
        try shell.run()
        shell.waitUntilExit()
        XCTAssertEqual(shell.terminationStatus, 64)
        XCTAssertTrue(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .contains("argument 3 is not valid UTF-8 text"))
    }

    func testPromptsComeFromStandardInputAndMayStartWithADash() throws {
        let fromStdin = try CLI.run(["generate", "--prompt-file", "-", "--max-new-tokens", "2", "--json"], stdin: "-1 is a number")
        XCTAssertEqual(fromStdin.status, 0, fromStdin.stderr)
        let dashed = try CLI.run(["generate", "--prompt", "-1 is a number", "--max-new-tokens", "2", "--json"])
        XCTAssertEqual(dashed.status, 0, dashed.stderr)
        XCTAssertEqual(fromStdin.stdout.components(separatedBy: "\"timings\"")[0].components(separatedBy: "\"prompt_token_ids\"")[1],
                       dashed.stdout.components(separatedBy: "\"timings\"")[0].components(separatedBy: "\"prompt_token_ids\"")[1])
    }

    /// Unknown or incomplete commands are refused (not sent to the model); statistics go to stderr, answers to stdout.
    func testChatCommandsAndStatistics() throws {
        let run = try CLI.run(["chat", "--max-new-tokens", "3"], stdin: "/unknown\n/image\n/help\n//slash\n/quit\n")
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("unknown command /unknown. Commands: /image PATH_OR_URL"), run.stderr)
        XCTAssertTrue(run.stderr.contains("/image needs a file path, URL or data URI"), run.stderr)
        XCTAssertTrue(run.stderr.contains("tokens/s)"), "statistics of the //slash message on stderr: \(run.stderr)")
        XCTAssertFalse(run.stdout.contains("tokens/s"), "no statistics between answers on stdout: \(run.stdout)")
    }
}
