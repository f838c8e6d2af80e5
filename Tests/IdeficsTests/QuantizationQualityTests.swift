import Foundation
import Idefics
import TestSupport
import XCTest

/// What load-time quantization costs the demo model: the next-token distribution at each evaluation answer's first
/// token, against the stored (F32) weights. Measured on these 15 items with the prompt's products on dequantized
/// weights (portable kernels): mean KL divergence 2.4e-6 nats for Q8_0 (5.2e-6 with the vision tower too) and
/// 2.8e-4 for Q4_0; with int8 activations there too: 5.3e-6, 8.7e-6 and 2.5e-4 (VNNI), 5.6e-6, 8.7e-6 and 2.5e-4
/// (AVX2); every top-1 choice kept. The bounds leave a
/// ~10x margin for other machines' rounding while still failing for a wrong scale or a misread block.
final class QuantizationQualityTests: XCTestCase {
    private func distributions(_ pipeline: Pipeline, _ items: [EvaluationItem]) throws -> [[Double]] {
        try items.map { item in
            let image = try ImageInput.load(item.imagePath)
            let text = try pipeline.render([.user(.image(image), .text(item.question))]).text
            let prepared = try pipeline.prepare(prompt: text, images: [image])
            var session = pipeline.makeSession(imageRows: prepared.imageRows)
            let logits = try session.prefill(prepared.ids).map(Double.init)
            let top = logits.max()!
            let weights = logits.map { exp($0 - top) }
            let total = weights.reduce(0, +)
            return weights.map { $0 / total }
        }
    }

    func testQuantizedLoadsKeepTheDemoModelsNextTokenDistributions() throws {
        let model = DemoModelTests.model.path
        let all = try EvaluationItem.load(DemoModelTests.evaluationSet.appendingPathComponent("eval.jsonl").path)
        let items = stride(from: 0, to: all.count, by: 20).map { all[$0] } // 15 items, every question type
        XCTAssertEqual(items.count, 15)
        let reference = try distributions(Pipeline(pathOrID: model, threads: 2), items)
        for (format, quantizeVision, bound, topOne) in [(QuantizedFormat.q8, false, 5e-5, 15), (.q8, true, 1e-4, 15),
                                                        (.q4, false, 3e-3, 15)] {
            let quantized = try distributions(Pipeline(pathOrID: model, threads: 2, quantize: format,
                                                       quantizeVision: quantizeVision), items)
            var divergence = 0.0, agree = 0
            for (p, q) in zip(reference, quantized) {
                divergence += zip(p, q).reduce(0) { $0 + ($1.0 > 0 ? $1.0 * log($1.0 / max($1.1, 1e-300)) : 0) }
                if p.indices.max(by: { p[$0] < p[$1] }) == q.indices.max(by: { q[$0] < q[$1] }) { agree += 1 }
            }
            let mean = divergence / Double(items.count)
            let name = format.rawValue + (quantizeVision ? " + vision" : "")
            print(String(format: "%@: mean KL %.2e nats, top-1 %d/%d", name, mean, agree, items.count))
            XCTAssertLessThan(mean, bound, "mean KL of \(name)")
            XCTAssertGreaterThanOrEqual(agree, topOne, "top-1 agreement of \(name)")
        }
    }
}
