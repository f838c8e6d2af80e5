import Foundation
import Idefics
import IdeficsCheckpoint
import TestSupport
import XCTest

/// `idefics quantize` writes what a load-time quantization makes, to the byte, and its folder loads by mapping
/// those bytes: no quantizing and no float copy at load.
final class CheckpointQuantizerTests: XCTestCase {
    private func copy(_ fixture: String) throws -> URL {
        let folder = try temporaryDirectory().appendingPathComponent("in")
        try FileManager.default.copyItem(at: Fixtures.url(fixture), to: folder)
        return folder
    }

    private func assertSameMatrices(_ written: Pipeline, _ loadTime: Pipeline, _ format: QuantizedFormat,
                                    file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(written.decoder.matrices.count, loadTime.decoder.matrices.count, file: file, line: line)
        for (a, b) in zip(written.decoder.matrices, loadTime.decoder.matrices) {
            XCTAssertEqual(a.weight.quantization, format, a.weight.name, file: file, line: line)
            XCTAssertEqual(a.weight.byteCount, b.weight.byteCount, file: file, line: line)
            XCTAssertEqual(memcmp(a.weight.data, b.weight.data, a.weight.byteCount), 0, a.weight.name, file: file, line: line)
            // Mapped from the file as it is: the matrix is the stored tensor's own memory.
            let stored = try written.checkpoint.tensor(a.weight.name, floatOnly: false)
            XCTAssertEqual(a.weight.data, stored.data, a.weight.name, file: file, line: line)
        }
        let prompt = "User: What is in a rainbow?<end_of_utterance>\nAssistant:"
        var sessionA = written.makeSession(), sessionB = loadTime.makeSession()
        let ids = try written.prepare(prompt: prompt, images: []).ids
        XCTAssertEqual(try sessionA.prefill(ids), try sessionB.prefill(ids), file: file, line: line)
    }

    func testWrittenFolderHoldsTheLoadTimeQuantizationsBytes() throws {
        let input = Fixtures.url("models/tiny-bf16-swa")
        for format in QuantizedFormat.targets {
            let output = try temporaryDirectory().appendingPathComponent("out-\(format.rawValue)")
            let summary = try CheckpointQuantizer.write(from: input.path, to: output.path, format: format, threads: 2)
            // Three layers' matrices, the head, and the connector's: its projection and its perceiver's 3 layers.
            XCTAssertEqual(summary.convertedTensors, 3 * 7 + 1 + 3 + 3 * 7)
            let written = try Pipeline(pathOrID: output.path, threads: 2)
            XCTAssertEqual(written.checkpoint.storedQuantization, .blocks(format))
            try assertSameMatrices(written, Pipeline(pathOrID: input.path, threads: 2, quantize: format), format)
            // Everything but the weights is copied; config.json says how the matrices are stored.
            let files = try FileManager.default.contentsOfDirectory(atPath: output.path).sorted()
            XCTAssertEqual(files, try (FileManager.default.contentsOfDirectory(atPath: input.path)
                .filter { !$0.hasSuffix(".safetensors") } + ["model.safetensors"]).sorted())
            let config = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("config.json")))
                as! [String: Any]
            let quantization = try XCTUnwrap(config["quantization_config"] as? [String: Any])
            XCTAssertEqual(quantization["quant_method"] as? String, "swift-idefics")
            XCTAssertEqual(quantization["format"] as? String, format == .q8 ? "q8_0" : "q4_0")
            XCTAssertEqual(quantization["block_size"] as? Int, 32)
            XCTAssertEqual(quantization["row_group_size"] as? Int, 16)
            XCTAssertEqual(quantization["quantize_vision"] as? Bool, false)
            XCTAssertEqual(quantization.count, 5)
        }
    }

    func testVisionTowerAndTiedHead() throws {
        // The demo model with its vision tower and connector quantized too.
        let demo = DemoModelTests.model.path
        let output = try temporaryDirectory().appendingPathComponent("demo-q8")
        let summary = try CheckpointQuantizer.write(from: demo, to: output.path, format: .q8, includeVision: true, threads: 2)
        let written = try Pipeline(pathOrID: output.path, threads: 2)
        let loadTime = try Pipeline(pathOrID: demo, threads: 2, quantize: .q8, quantizeVision: true)
        try assertSameMatrices(written, loadTime, .q8)
        let vision = try written.checkpoint.tensor("model.vision_model.encoder.layers.0.mlp.fc1.weight", floatOnly: false)
        XCTAssertEqual(vision.dtype, .u8)
        XCTAssertGreaterThan(summary.convertedTensors, written.decoder.matrices.count)
        let image = try ImageInput.load(Fixtures.url("vision/images/coffee_70x70.png").path)
        let prompt = try written.render([.user(.image(image), .text("What shape is this?"))]).text
        XCTAssertEqual(try written.generate(prompt: prompt, images: [image], request: GenerationRequest(maxNewTokens: 6)).generatedTokenIds,
                       try loadTime.generate(prompt: prompt, images: [image], request: GenerationRequest(maxNewTokens: 6)).generatedTokenIds)

        // A tied head is quantized from the embeddings and stored as lm_head.weight; the embeddings stay float.
        let tied = try copy("models/tiny-f32")
        let configURL = tied.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        config["tie_word_embeddings"] = true
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let tiedOutput = try temporaryDirectory().appendingPathComponent("tied-q4")
        _ = try CheckpointQuantizer.write(from: tied.path, to: tiedOutput.path, format: .q4, threads: 2)
        let tiedWritten = try Pipeline(pathOrID: tiedOutput.path, threads: 2)
        XCTAssertEqual(tiedWritten.decoder.embedding.dtype, .f32)
        try assertSameMatrices(tiedWritten, Pipeline(pathOrID: tied.path, threads: 2, quantize: .q4), .q4)
    }

    /// `writeBF16` (`idefics quantize --type bf16`): every F32 and F16 tensor rounded to the nearest bf16 (checked
    /// value by value against `nearestBF16`), the others (all of tiny-bf16-swa's, BF16) copied as stored, in one plain
    /// safetensors file (from three shards too) whose config.json says bfloat16 in `dtype`, in `torch_dtype` where the
    /// source has it, and in the sub-configs that name one, with no quantization_config. Loaded for bf16 products, its
    /// matrices are the file's own mapped bytes (no rounding at load), the bytes a load of the source rounds them to.
    func testBF16FolderHoldsEveryFloatTensorRounded() throws {
        // tiny-f32 with dtypes in two of its sub-configs, as some saves write them.
        let f32 = try copy("models/tiny-f32")
        let configURL = f32.appendingPathComponent("config.json")
        var f32Config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        for (key, field) in [("vision_config", "torch_dtype"), ("text_config", "dtype")] {
            var sub = f32Config[key] as! [String: Any]
            sub[field] = "float32"
            f32Config[key] = sub
        }
        try JSONSerialization.data(withJSONObject: f32Config).write(to: configURL)
        for input in [f32, Fixtures.url("models/tiny-f16-sharded"), Fixtures.url("models/tiny-bf16-swa")] {
            let output = try temporaryDirectory().appendingPathComponent("bf16")
            let summary = try CheckpointQuantizer.writeBF16(from: input.path, to: output.path, threads: 2)
            let source = try Checkpoint(directory: input), written = try Checkpoint(directory: output)
            XCTAssertEqual(written.tensorNames, source.tensorNames)
            XCTAssertEqual(summary.tensors, source.tensorNames.count)
            var rounded = 0
            for name in source.tensorNames {
                let stored = try source.tensor(name, floatOnly: false), copy = try written.tensor(name, floatOnly: false)
                XCTAssertEqual(copy.shape, stored.shape, name)
                guard stored.dtype == .f32 || stored.dtype == .f16 else {
                    XCTAssertEqual(copy.dtype, stored.dtype, name)
                    XCTAssertEqual(memcmp(copy.data, stored.data, stored.byteCount), 0, name)
                    continue
                }
                rounded += 1
                XCTAssertEqual(copy.dtype, .bf16, name)
                let bits = copy.data.assumingMemoryBound(to: UInt16.self)
                for (i, value) in stored.floats().enumerated()
                where Float(bitPattern: UInt32(bits[i]) << 16).bitPattern != nearestBF16(value).bitPattern {
                    XCTFail("\(name)[\(i)]: \(value) written as bf16 bits \(bits[i])")
                    break
                }
            }
            XCTAssertEqual(rounded, input.lastPathComponent == "tiny-bf16-swa" ? 0 : summary.tensors) // all BF16, or none
            XCTAssertEqual(summary.convertedTensors, rounded)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: output.path).sorted(),
                           try (FileManager.default.contentsOfDirectory(atPath: input.path)
                                .filter { !$0.hasSuffix(".safetensors") && !$0.hasSuffix(".index.json") } + ["model.safetensors"]).sorted())
            let original = try JSONSerialization.jsonObject(with: Data(contentsOf: input.appendingPathComponent("config.json")))
                as! [String: Any]
            let config = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("config.json")))
                as! [String: Any]
            XCTAssertEqual(config["dtype"] as? String, "bfloat16")
            XCTAssertEqual(config["torch_dtype"] as? String, original["torch_dtype"] == nil ? nil : "bfloat16")
            XCTAssertNil(config["quantization_config"])
            for (key, value) in original { // a sub-config that names a dtype gets `dtype`, and `torch_dtype` if it had one
                guard let sub = value as? [String: Any], let written = config[key] as? [String: Any] else { continue }
                let named = sub["dtype"] != nil || sub["torch_dtype"] != nil
                XCTAssertEqual(written["dtype"] as? String, named ? "bfloat16" : nil, "\(key).dtype")
                XCTAssertEqual(written["torch_dtype"] as? String, sub["torch_dtype"] == nil ? nil : "bfloat16", "\(key).torch_dtype")
            }
            if input == f32 { XCTAssertNotNil((config["vision_config"] as? [String: Any])?["torch_dtype"]) }

            let fromFolder = try Pipeline(pathOrID: output.path, threads: 2, products: .bfloat16)
            let atLoad = try Pipeline(pathOrID: input.path, threads: 2, products: .bfloat16)
            XCTAssertEqual(fromFolder.decoder.matrices.count, atLoad.decoder.matrices.count)
            for (mapped, roundedAtLoad) in zip(fromFolder.decoder.matrices, atLoad.decoder.matrices) {
                let name = mapped.weight.name
                XCTAssertEqual(mapped.weight.dtype, .bf16, name)
                XCTAssertEqual(mapped.weight.products, .bfloat16, name)
                XCTAssertEqual(roundedAtLoad.weight.dtype, .bf16, name)
                XCTAssertEqual(memcmp(mapped.weight.data, roundedAtLoad.weight.data, mapped.weight.byteCount), 0, name)
                XCTAssertEqual(mapped.weight.data, try fromFolder.checkpoint.tensor(name, floatOnly: false).data, name)
            }
        }
    }

    func testRefusalsLeaveEverythingAsItWas() throws {
        let input = Fixtures.url("models/tiny-f32")
        // An existing output folder is never written into.
        let existing = try temporaryDirectory()
        try Data("keep".utf8).write(to: existing.appendingPathComponent("notes.txt"))
        XCTAssertEqual(errorText { try CheckpointQuantizer.write(from: input.path, to: existing.path, format: .q8) },
                       "\(existing.path) exists: the converted checkpoint goes to a new folder (nothing is written over)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: existing.path), ["notes.txt"])
        // A quantized checkpoint is not quantized again.
        let output = try temporaryDirectory().appendingPathComponent("q8")
        _ = try CheckpointQuantizer.write(from: input.path, to: output.path, format: .q8, threads: 2)
        let again = try temporaryDirectory().appendingPathComponent("again")
        XCTAssertTrue(errorText { try CheckpointQuantizer.write(from: output.path, to: again.path, format: .q4) }
            .hasSuffix("is quantized already (config.json has a quantization_config): quantize the unquantized checkpoint"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: again.path))
        let parentless = try temporaryDirectory().appendingPathComponent("missing/out")
        XCTAssertTrue(errorText { try CheckpointQuantizer.write(from: input.path, to: parentless.path, format: .q8) }
            .contains("does not exist"))
    }

    func testDamagedQuantizationConfigNamesTheTensorOrField() throws {
        let output = try temporaryDirectory().appendingPathComponent("q8")
        _ = try CheckpointQuantizer.write(from: Fixtures.url("models/tiny-f32").path, to: output.path, format: .q8, threads: 2)
        let configURL = output.appendingPathComponent("config.json")
        let original = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        func loading(with quantization: [String: Any]) throws -> String {
            var config = original
            config["quantization_config"] = quantization
            try JSONSerialization.data(withJSONObject: config).write(to: configURL)
            return errorText { try Pipeline(pathOrID: output.path, threads: 1) }
        }
        let q4 = try loading(with: ["quant_method": "swift-idefics", "format": "q4_0", "row_group_size": 16])
        XCTAssertTrue(q4.hasSuffix("model.connector.modality_projection.gate_proj.weight: shape [64, 34] is not [64, 18], the "
                                  + "bytes of 64 rows of 32 weights in quantization_config's format q4_0"), q4)
        XCTAssertTrue(try loading(with: ["quant_method": "swift-idefics", "format": "q5_k"])
            .contains("field quantization_config.format is \"q5_k\": this block format is not supported (supported: q4_0, q8_0)"))
        XCTAssertTrue(try loading(with: ["quant_method": "swift-idefics", "format": "q8_0", "block_size": 64])
            .contains("field quantization_config.block_size must be 32"))
        // A folder of an earlier build (rows one after another, no row_group_size) is refused, not misread.
        XCTAssertTrue(try loading(with: ["quant_method": "swift-idefics", "format": "q8_0", "block_size": 32])
            .contains("field quantization_config.row_group_size is missing: the folder was written by an earlier "
                      + "swift-idefics, whose row-by-row layout of the blocks this version does not read; run "
                      + "`idefics quantize` on the unquantized checkpoint again"))
        XCTAssertTrue(try loading(with: ["quant_method": "swift-idefics", "format": "q8_0", "row_group_size": 8])
            .contains("field quantization_config.row_group_size is 8: the blocks are read in groups of 16 rows"))
        // Without its quantization_config the U8 matrices are nothing the loader can read.
        var config = original
        config.removeValue(forKey: "quantization_config")
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        XCTAssertTrue(errorText { try Pipeline(pathOrID: output.path, threads: 1) }.contains(
            "tensor model.connector.modality_projection.gate_proj.weight: dtype U8 (blocks of quantized weights?), but "
                + "config.json has no quantization_config saying their format"))
    }
}
