import Foundation
import IdeficsCheckpoint
import IdeficsModels
import IdeficsTensors
import XCTest

/// Idefics2's resampler over several images at once (the crops of a split image): each image's vectors equal those of
/// the image resampled alone, bit for bit, at float32 and bf16 products and with Q8_0 and Q4_0 weights (a connector
/// quantizes with the language model). The fixtures' tiny checkpoints have 4 latents,
/// fewer than the products need to be independent of their row count, so they resample one image at a time; this
/// connector has 24 latents and random weights, written here, so that its images resample together.
final class PerceiverTests: XCTestCase {
    private let (visionHidden, intermediate, hidden, latents) = (32, 64, 32, 24) // inputs in whole 32-value blocks

    /// A connector checkpoint: the modality projection and a 2-layer resampler, weights from a fixed generator.
    private func connector(in directory: URL) throws {
        var state: UInt64 = 7
        func values(_ count: Int, scale: Float) -> [Float] {
            (0..<count).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000 * scale
            }
        }
        var writer = SafetensorsWriter()
        func add(_ name: String, _ shape: [Int], scale: Float = 0.2, around: Float = 0) throws {
            try writer.add("c." + name, shape: shape, floats: values(shape.reduce(1, *), scale: scale).map { $0 + around })
        }
        for (name, shape) in [("gate_proj", [intermediate, visionHidden]), ("up_proj", [intermediate, visionHidden]),
                              ("down_proj", [hidden, intermediate])] {
            try add("modality_projection." + name + ".weight", shape)
        }
        try add("perceiver_resampler.latents", [latents, hidden], scale: 1)
        for layer in 0..<2 {
            let p = "perceiver_resampler.layers.\(layer)."
            for norm in ["input_latents_norm", "input_context_norm", "post_attention_layernorm"] {
                try add(p + norm + ".weight", [hidden], around: 1)
            }
            // 4 query heads of 8, 2 key/value heads.
            for (name, shape) in [("q_proj", [32, hidden]), ("k_proj", [16, hidden]), ("v_proj", [16, hidden]),
                                  ("o_proj", [hidden, 32])] {
                try add(p + "self_attn." + name + ".weight", shape)
            }
            for (name, shape) in [("gate_proj", [4 * hidden, hidden]), ("up_proj", [4 * hidden, hidden]),
                                  ("down_proj", [hidden, 4 * hidden])] {
                try add(p + "mlp." + name + ".weight", shape)
            }
        }
        try add("perceiver_resampler.norm.weight", [hidden], around: 1)
        try writer.write(to: directory.appendingPathComponent("model.safetensors").path)
    }

    func testImagesResampledTogetherMatchEachAlone() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("perceiver-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try connector(in: directory)
        let config = try PerceiverConfig(ConfigObject(path: "perceiver", values: [
            "hidden_size": hidden, "resampler_n_latents": latents, "resampler_depth": 2, "resampler_n_heads": 4,
            "resampler_head_dim": 8, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
        ]))
        XCTAssertGreaterThanOrEqual(latents, KernelPath.rowIndependentTokens, "too few latents to resample together")
        let pool = WorkerPool(threads: 2)
        let patches = [7, 30, 1, 12] // a lone patch too: its keys and values are 25 rows alone
        let segments = patches.indices.map { patches[..<$0].reduce(0, +)..<patches[...$0].reduce(0, +) }
        let states = (0..<(segments.last!.upperBound * visionHidden)).map { Float(($0 * 29) % 83) / 41 - 1 }
        var floatWeights: [Float]? // float32 products of the float weights: what quantizing must change
        for (precision, format) in [(ProductPrecision.float32, nil), (.bfloat16, nil), (.float32, QuantizedFormat.q8),
                                    (.float32, .q4)] {
            var checkpoint = try Checkpoint(directory: directory)
            checkpoint.products = precision
            checkpoint.quantization = format.map { WeightQuantization(format: $0) }
            let perceiver = try Perceiver(config: config, visionHidden: visionHidden, textIntermediate: intermediate,
                                          checkpoint: checkpoint, prefix: "c.")
            let context = perceiver.project(states, patches: segments.last!.upperBound, pool: pool)
            let together = perceiver.resample(context: context, segments: segments, pool: pool)
            let alone = segments.flatMap { rows in
                perceiver.resample(context: Array(context[rows.lowerBound * hidden..<rows.upperBound * hidden]),
                                   segments: [0..<rows.count], pool: pool)
            }
            XCTAssertEqual(together.count, patches.count * latents * hidden)
            let differing = zip(together, alone).filter { $0.bitPattern != $1.bitPattern }.count
            let label = "\(precision) \(format.map(\.rawValue) ?? "float weights")"
            XCTAssertEqual(differing, 0, "\(label): values resampled together that differ from alone")
            // Each image's vectors are its own: a resampler that attended across images would differ from alone.
            let first = Array(together[0..<latents * hidden]), second = Array(together[latents * hidden..<2 * latents * hidden])
            XCTAssertNotEqual(first, second, label)
            if let floatWeights, format != nil { XCTAssertNotEqual(together, floatWeights, "\(label): not quantized") }
            floatWeights = floatWeights ?? together
        }
    }
}
