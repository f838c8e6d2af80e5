import Foundation
import IdeficsCheckpoint
import IdeficsModels
import IdeficsTensors
import TestSupport
import XCTest

/// Load-time quantization of the committed random-weight checkpoints (their decoders, every position of every
/// reference prompt; these prompts are under 20 tokens, so the activations are int8-quantized too): mean KL
/// divergence of the next-token distributions and top-1 agreement against the stored weights. Measured: Q8_0
/// 1.1e-3 nats and 97.7% of 384 positions, Q4_0 0.19 nats and 63%. Random Gaussian weights are the worst case for
/// 4-bit blocks and their close top-2 logits flip easily; the trained demo model loses far less
/// (QuantizationQualityTests). The bounds are ~2-3x the measured values: a misread block or scale is far outside.
final class QuantizedDecoderTests: XCTestCase {
    let pool = WorkerPool(threads: 2)

    /// KL(p || q) of the softmaxes of two logit rows, and whether their argmaxes agree (plain loops: this runs in
    /// debug builds over 32,000-entry rows).
    private func compare(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> (Double, Bool) {
        let x = Array(a), y = Array(b)
        var (topA, topB, argA, argB) = (x[0], y[0], 0, 0)
        for i in x.indices {
            if x[i] > topA { (topA, argA) = (x[i], i) }
            if y[i] > topB { (topB, argB) = (y[i], i) }
        }
        var (sumA, sumB, cross) = (0.0, 0.0, 0.0)
        for i in x.indices {
            let ea = exp(Double(x[i] - topA))
            sumA += ea
            sumB += exp(Double(y[i] - topB))
            cross += ea * (Double(x[i] - topA) - Double(y[i] - topB))
        }
        // KL = sum p (log p - log q), with log p = a - topA - log sumA and log q = b - topB - log sumB.
        return (cross / sumA - log(sumA) + log(sumB), argA == argB)
    }

    /// The same measures for a load changed by `configure`, over the checkpoints `applies` picks (given the name
    /// and the stored dtype of the embedding matrix).
    private func measure(applies: (String, DType) -> Bool = { _, _ in true }, _ configure: (inout Checkpoint) -> Void) throws
        -> (divergence: Double, agreement: Double, positions: Int) {
        var divergence = 0.0, agree = 0, positions = 0
        for name in ModelReference.names {
            let reference = try ModelReference(name)
            let stored = try Mistral(checkpoint: Checkpoint(directory: reference.directory))
            guard applies(name, stored.embedding.dtype) else { continue }
            var checkpoint = try Checkpoint(directory: reference.directory)
            checkpoint.pool = pool
            configure(&checkpoint)
            let quantized = try Mistral(checkpoint: checkpoint)
            let vocabulary = stored.config.vocabSize
            for c in reference.cases {
                var cacheA = stored.makeCache(), cacheB = quantized.makeCache()
                let positionsList = Array(c.inputIds.indices)
                let a = stored.forward(stored.embed(c.inputIds), positions: positionsList, cache: &cacheA, logits: .all, pool: pool)
                let b = quantized.forward(quantized.embed(c.inputIds), positions: positionsList, cache: &cacheB, logits: .all,
                                          pool: pool)
                for t in c.inputIds.indices {
                    let (kl, same) = compare(a[t * vocabulary..<(t + 1) * vocabulary], b[t * vocabulary..<(t + 1) * vocabulary])
                    divergence += kl
                    agree += same ? 1 : 0
                    positions += 1
                }
            }
        }
        return (divergence / Double(positions), Double(agree) / Double(positions), positions)
    }

    func testQuantizedDecodersStayCloseToTheStoredWeights() throws {
        for (format, maxDivergence, minAgreement) in [(QuantizedFormat.q8, 3e-3, 0.95), (.q4, 0.4, 0.5)] {
            let (divergence, agreement, positions) = try measure { $0.quantization = WeightQuantization(format: format) }
            print(String(format: "%@ on the tiny checkpoints: mean KL %.2e nats, top-1 %.1f%% of %d positions",
                         format.rawValue, divergence, 100 * agreement, positions))
            XCTAssertGreaterThan(positions, 30)
            XCTAssertLessThan(divergence, maxDivergence, "\(format)")
            XCTAssertGreaterThanOrEqual(agreement, minAgreement, "\(format)")
        }
    }

    /// bf16 products (activations rounded to bf16 before each product with a BF16 matrix, as torch runs a bf16
    /// model) on the BF16 checkpoints: measured mean KL 8.2e-5 nats, top-1 100% of 128 (vdpbf16ps or rounded float32
    /// products); with bf16 products (AMX tiles, vdpbf16ps), where the prompt's attention runs at bf16 too (queries,
    /// keys, values and softmax weights rounded), 1.1e-4 nats and 96.9% (4 of the 128 positions of these
    /// random-weight models flip; the same on AMX and on a Zen 4's vdpbf16ps).
    /// Checkpoints stored in F32 or F16 have every matrix rounded to BF16 at load as well, so the rounding of the weights
    /// adds to that of the activations: measured 1.3e-4 nats and 98.4% of 256 positions (1.4e-4 and 98.8% on AMX).
    func testBF16ProductsStayCloseToFloat32Products() throws {
        let (divergence, agreement, positions) = try measure(applies: { _, dtype in dtype == .bf16 }) {
            $0.products = .bfloat16
        }
        print(String(format: "bf16 products on the BF16 checkpoints: mean KL %.2e nats, top-1 %.1f%% of %d positions",
                     divergence, 100 * agreement, positions))
        XCTAssertGreaterThan(positions, 10)
        XCTAssertLessThan(divergence, 3e-4)
        XCTAssertGreaterThanOrEqual(agreement, KernelPath.hasBF16Products ? 0.95 : 0.97)
        let rounded = try measure(applies: { _, dtype in dtype != .bf16 }) { $0.products = .bfloat16 }
        print(String(format: "bf16 products on the F32 and F16 checkpoints: mean KL %.2e nats, top-1 %.1f%% of %d positions",
                     rounded.divergence, 100 * rounded.agreement, rounded.positions))
        XCTAssertGreaterThan(rounded.positions, 10)
        XCTAssertGreaterThan(rounded.divergence, 0) // the weights were rounded
        XCTAssertLessThan(rounded.divergence, 5e-4)
        XCTAssertGreaterThanOrEqual(rounded.agreement, 0.95)
        for name in ModelReference.names {
            var checkpoint = try Checkpoint(directory: ModelReference(name).directory)
            let stored = try Mistral(checkpoint: checkpoint)
            guard stored.embedding.dtype != .bf16 else { continue }
            checkpoint.products = .bfloat16
            let model = try Mistral(checkpoint: checkpoint)
            XCTAssertEqual(model.matrices.count, stored.matrices.count)
            for (matrix, original) in zip(model.matrices, stored.matrices) {
                XCTAssertEqual(original.weight.dtype, stored.embedding.dtype, "\(name) \(matrix.weight.name)")
                XCTAssertEqual(matrix.weight.dtype, .bf16, "\(name) \(matrix.weight.name)")
                XCTAssertEqual(matrix.weight.products, .bfloat16, "\(name) \(matrix.weight.name)")
                XCTAssertEqual(matrix.weight.shape, original.weight.shape)
            }
        }
    }
}
