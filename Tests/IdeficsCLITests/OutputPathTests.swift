import Foundation
import TestSupport
import XCTest

/// Class 3: output targets are checked before the work starts, nothing but a regular file is ever replaced, and
/// write errors name the target and exit non-zero.
final class OutputPathTests: XCTestCase {
    private func preprocess(to output: String) -> [String] {
        ["preprocess", "--model", CLI.demoModel.path, "--image", CLI.exampleImage, "--output", output]
    }

    func testPreprocessNeverReplacesALinkOrAPipe() throws {
        let folder = try temporaryDirectory()
        let kept = folder.appendingPathComponent("kept.safetensors")
        try Data("mine".utf8).write(to: kept)
        let link = folder.appendingPathComponent("link.safetensors")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: kept)
        try CLI.assertRefused(preprocess(to: link.path), "\(link.path): cannot be written: it is a symbolic link")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link.path), kept.path)
        XCTAssertEqual(try String(contentsOf: kept, encoding: .utf8), "mine")

        let fifo = folder.appendingPathComponent("fifo")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        try CLI.assertRefused(preprocess(to: fifo.path), "it is not a regular file", timeout: 30)
        try CLI.assertRefused(preprocess(to: "/dev/full"), "/dev/full: cannot be written: it is not a regular file")
        try CLI.assertRefused(preprocess(to: folder.path), "it is a folder")
    }

    func testPreprocessWritesARegularFileWholeAndReplacesAnOldOne() throws {
        let folder = try temporaryDirectory()
        let output = folder.appendingPathComponent("pixels.safetensors")
        try Data("old".utf8).write(to: output)
        let run = try CLI.run(preprocess(to: output.path))
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertGreaterThan(try Data(contentsOf: output).count, 1000)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["pixels.safetensors"],
                       "no temporary file left behind")
    }

    /// `quantize --type type` of the demo model into a new temporary folder: the folder holding it, the written
    /// checkpoint and what the run said on stderr (progress to 100%).
    private func quantizedDemo(_ type: String) throws -> (folder: URL, output: URL, stderr: String) {
        let folder = try temporaryDirectory()
        let output = folder.appendingPathComponent("demo-\(type)")
        let run = try CLI.run(["quantize", "--model", CLI.demoModel.path, "--output", output.path, "--type", type])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("writing \(output.path): 100%"), run.stderr)
        return (folder, output, run.stderr)
    }

    /// The tokens `generate` answers to a short image prompt with `options` (it must succeed).
    private func generatedTokens(_ options: [String]) throws -> [Int] {
        let run = try CLI.run(["generate", "--prompt", "<image>What shape is this?", "--image", CLI.exampleImage,
                               "--max-new-tokens", "4", "--json"] + options)
        XCTAssertEqual(run.status, 0, run.stderr)
        return (try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any])["generated_token_ids"] as! [Int]
    }

    /// `quantize` writes a new folder only, with progress on stderr, and the folder answers as the load-time
    /// quantization does.
    func testQuantizeWritesANewFolderAndNeverIntoAnExistingOne() throws {
        let (folder, output, stderr) = try quantizedDemo("q8")
        // Four layers, the head, and the connector: its projection and its perceiver's two layers.
        let matrices = 4 * 7 + 1 + 3 + 2 * 7
        XCTAssertTrue(stderr.contains("(\(matrices) quantized)"), stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["demo-q8"], "no staging folder left")
        XCTAssertEqual(try generatedTokens(["--model", output.path]),
                       try generatedTokens(["--model", CLI.demoModel.path, "--quantize", "q8"]))

        try CLI.assertRefused(["quantize", "--model", CLI.demoModel.path, "--output", output.path, "--type", "q8"],
                              "\(output.path) exists: the converted checkpoint goes to a new folder")
        try CLI.assertRefused(["quantize", "--model", CLI.demoModel.path, "--output", folder.appendingPathComponent("x").path,
                               "--type", "q4z"], status: 64, "--type")
    }

    /// `quantize --type bf16` writes the plain BF16 checkpoint (CheckpointQuantizerTests checks its tensors), which
    /// then answers as the source does with `--matmul-precision bf16` (its matrices are the same BF16 values; the
    /// norms and embeddings it rounded too do not change these tokens).
    func testQuantizeToBF16() throws {
        let (folder, output, stderr) = try quantizedDemo("bf16")
        XCTAssertTrue(stderr.contains("tensors (133 rounded)"), stderr) // every one of the demo's F16 tensors
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["demo-bf16"], "no staging folder left")
        XCTAssertEqual(try generatedTokens(["--model", output.path, "--matmul-precision", "bf16"]),
                       try generatedTokens(["--model", CLI.demoModel.path, "--matmul-precision", "bf16"]))
        try CLI.assertRefused(["quantize", "--model", CLI.demoModel.path, "--output", folder.appendingPathComponent("x").path,
                               "--type", "bf16", "--quantize-vision"], status: 64, "--quantize-vision is for q8 and q4")
    }

    /// The evaluation would run for minutes before finding out that its report cannot be written.
    func testEvalChecksItsOutputsFolderBeforeEvaluating() throws {
        let missing = "/nonexistent-folder/answers.jsonl"
        let start = Date()
        try CLI.assertRefused(["eval", "--data", CLI.repository.appendingPathComponent("Models/idefics2-demo-eval/eval.jsonl").path,
                               "--outputs", missing], "\(missing): cannot be written: its folder /nonexistent-folder does not exist")
        XCTAssertLessThan(Date().timeIntervalSince(start), 20, "refused before the evaluation, not after it")
    }

    func testWritingToAFullDiskOrAClosedPipeExitsWithAMessage() throws {
        let full = try XCTUnwrap(FileHandle(forWritingAtPath: "/dev/full"))
        let run = try CLI.run(["tokenize", "--text", "hello"], stdout: full)
        XCTAssertFalse(run.signaled)
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("cannot write to standard output: No space left on device"), run.stderr)

        let pipe = Pipe()
        try pipe.fileHandleForReading.close()
        let closed = try CLI.run(["tokenize", "--text", "hello"], stdout: pipe.fileHandleForWriting)
        XCTAssertFalse(closed.signaled, "killed by SIGPIPE")
        XCTAssertEqual(closed.status, 1)
        XCTAssertTrue(closed.stderr.contains("cannot write to standard output: Broken pipe"), closed.stderr)
    }
}
