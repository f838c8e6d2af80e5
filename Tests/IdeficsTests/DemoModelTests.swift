import Foundation
import Idefics
import TestSupport
import XCTest

/// The committed demo model (Models/idefics2-demo) answers its held-out evaluation set (Models/idefics2-demo-eval)
/// like transformers does: the same greedy tokens item by item, hence the same exact-match accuracy. A trained model
/// is a strong end-to-end check: PNG bytes, processor, prompt, vision tower, connector and decoder all have to be
/// right for the answers to agree with PyTorch's on hundreds of real images.
final class DemoModelTests: XCTestCase {
    static let repository = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
    static let model = repository.appendingPathComponent("Models/idefics2-demo")
    static let evaluationSet = repository.appendingPathComponent("Models/idefics2-demo-eval")

    func testEvaluationSetMatchesPyTorchItemByItem() async throws {
        let pipeline = try Pipeline(pathOrID: Self.model.path, threads: 2)
        let items = try EvaluationItem.load(Self.evaluationSet.appendingPathComponent("eval.jsonl").path)
        let reference = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Self.evaluationSet.appendingPathComponent("eval_pytorch.json"))) as! [String: Any]
        let expected = reference["items"] as! [[String: Any]]
        XCTAssertEqual(items.count, expected.count)

        let results = try await Evaluation.run(items, pipeline: pipeline, batchSize: 16)
        var identical = 0
        for (result, row) in zip(results, expected) {
            XCTAssertEqual(result.question, row["question"] as? String)
            if result.generatedTokenIds == row["tokens"] as! [Int] {
                identical += 1
            } else {
                print("differs from PyTorch: \(row["image"]!) \(result.question) -> \(result.prediction)")
            }
        }
        let report = EvaluationReport(results)
        let pytorch = reference["accuracy"] as! Double
        XCTAssertGreaterThanOrEqual(Double(identical), 0.99 * Double(results.count), "greedy answers identical")
        XCTAssertEqual(report.overall.accuracy, pytorch, accuracy: 0.01)
        XCTAssertGreaterThanOrEqual(report.overall.accuracy, 0.9, "the demo model's accuracy target")
        print("demo model: \(identical)/\(results.count) answers identical to PyTorch; exact match\n\(report.table)")
    }

    /// The README's main command.
    func testReadmeExampleAnswersCorrectly() throws {
        let pipeline = try Pipeline(pathOrID: Self.model.path, threads: 2)
        let image = try ImageInput.load(Self.repository.appendingPathComponent("Examples/shapes-1.png").path)
        let output = try pipeline.generate(messages: [.user(.image(image), .text("How many red circles are there?"))],
                                           request: GenerationRequest(maxNewTokens: 20))
        XCTAssertEqual(output.text.trimmingCharacters(in: .whitespaces), "3")
        XCTAssertEqual(output.finishReason, .eosToken)
        XCTAssertEqual(output.generatedTokenIds.last, 32002, "ends with <end_of_utterance>")
    }
}
