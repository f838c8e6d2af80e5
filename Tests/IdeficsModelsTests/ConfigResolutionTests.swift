import Foundation
@testable import IdeficsCheckpoint
@testable import IdeficsModels
import TestSupport
import XCTest

/// Every config layout in `configs/resolved.json` (the published sparse idefics2 files, fine-tune and 5.23 saves,
/// nulls, absent sub-configs, plain decoders, Idefics v1) parsed by us and compared field by field with what
/// transformers 5.23 resolved from the same file (`scripts/make_config_fixtures.py`). No weights are needed.
final class ConfigResolutionTests: XCTestCase {
    private struct Case {
        let name: String
        let folder: URL
        let expect: String
        let dump: [String: Any]
    }

    private func cases() throws -> [Case] {
        let object = try JSONSerialization.jsonObject(with: Fixtures.data("configs/resolved.json")) as? [String: Any]
        let list = try XCTUnwrap(object?["cases"] as? [[String: Any]])
        return list.map {
            Case(name: $0["name"] as! String, folder: Fixtures.url($0["folder"] as! String), expect: $0["expect"] as! String, dump: $0)
        }
    }

    /// Compares our value with transformers' for each (field, value) pair; a field missing from the dump fails too,
    /// so a renamed field cannot silently drop out of the comparison.
    private func compare(_ section: String, _ ours: [(String, Any?)], in dump: [String: Any]?, _ name: String,
                         file: StaticString = #filePath, line: UInt = #line) {
        guard let dump else { return XCTFail("\(name): no \(section) in the dump", file: file, line: line) }
        for (key, value) in ours {
            let path = key.split(separator: ".").map(String.init)
            var reference: Any? = dump[path[0]]
            if path.count == 2 { reference = (reference as? [String: Any])?[path[1]] }
            guard let reference else { XCTFail("\(name): \(section).\(key) is not in the dump", file: file, line: line); continue }
            let same: Bool
            switch value {
            case nil: same = reference is NSNull
            case let v as Int: same = (reference as? NSNumber)?.intValue == v && !(reference is NSNull)
            case let v as Float: same = (reference as? NSNumber).map { Float($0.doubleValue) } == v
            case let v as Double: same = (reference as? NSNumber)?.doubleValue == v
            case let v as Bool: same = (reference as? Bool) == v
            case let v as String: same = (reference as? String) == v
            default: same = false
            }
            XCTAssertTrue(same, "\(name): \(section).\(key) is \(value.map { "\($0)" } ?? "nil"), transformers \(reference)",
                          file: file, line: line)
        }
    }

    /// LlamaConfig has no sliding window (ours is nil), so the field is compared for Mistral only.
    private func textFields(_ t: MistralConfig) -> [(String, Any?)] {
        XCTAssertTrue(t.family == .mistral || t.slidingWindow == nil)
        return [("vocab_size", t.vocabSize), ("hidden_size", t.hiddenSize), ("intermediate_size", t.intermediateSize),
         ("num_hidden_layers", t.layerCount), ("num_attention_heads", t.headCount),
         ("num_key_value_heads", t.keyValueHeadCount), ("head_dim", t.headDim), ("rms_norm_eps", t.rmsNormEps),
         ("rope_parameters.rope_theta", t.ropeTheta), ("rope_parameters.rope_type", "default"),
         ("max_position_embeddings", t.maxPositionEmbeddings), ("hidden_act", "silu")]
            + (t.family == .mistral ? [("sliding_window", t.slidingWindow)] : [])
    }

    private func checkIdefics2(_ c: Case) throws {
        let config = try Idefics2Config(directory: c.folder)
        compare("config", [("image_token_id", config.imageTokenId), ("tie_word_embeddings", config.tieWordEmbeddings)],
                in: c.dump["config"] as? [String: Any], c.name)
        let text = c.dump["text_config"] as? [String: Any]
        XCTAssertEqual(text?["class"] as? String, config.text.family == .mistral ? "MistralConfig" : "LlamaConfig", c.name)
        compare("text_config", textFields(config.text), in: text, c.name)
        let v = config.vision
        compare("vision_config", [("hidden_size", v.hiddenSize), ("intermediate_size", v.intermediateSize),
                                  ("num_hidden_layers", v.layerCount), ("num_attention_heads", v.headCount),
                                  ("num_channels", v.channelCount), ("image_size", v.imageSize), ("patch_size", v.patchSize),
                                  ("layer_norm_eps", v.layerNormEps), ("hidden_act", "gelu_pytorch_tanh")],
                in: c.dump["vision_config"] as? [String: Any], c.name)
        let p = config.perceiver
        compare("perceiver_config", [("hidden_size", p.hiddenSize), ("rms_norm_eps", p.rmsNormEps),
                                     ("resampler_n_latents", p.latentCount), ("resampler_depth", p.depth),
                                     ("resampler_n_heads", p.headCount), ("resampler_head_dim", p.headDim),
                                     ("num_key_value_heads", p.keyValueHeadCount), ("hidden_act", "silu")],
                in: c.dump["perceiver_config"] as? [String: Any], c.name)
    }

    private func checkDecoder(_ c: Case) throws {
        guard case .decoder(let family, let object) = try ModelFamily(directory: c.folder) else {
            return XCTFail("\(c.name): not read as a plain decoder")
        }
        let config = try MistralConfig(object, family: family)
        XCTAssertEqual(c.dump["class"] as? String, family == .mistral ? "MistralConfig" : "LlamaConfig", c.name)
        compare("config", textFields(config) + [("tie_word_embeddings", config.tieWordEmbeddings)],
                in: c.dump["config"] as? [String: Any], c.name)
    }

    private func checkIdefics(_ c: Case) throws {
        guard case .idefics = try ModelFamily(directory: c.folder) else { return XCTFail("\(c.name): not read as Idefics v1") }
        let config = try IdeficsConfig(directory: c.folder)
        compare("config", [("vocab_size", config.vocabSize), ("additional_vocab_size", config.additionalVocabSize),
                           ("hidden_size", config.hiddenSize), ("intermediate_size", config.intermediateSize),
                           ("num_hidden_layers", config.layerCount), ("num_attention_heads", config.headCount),
                           ("hidden_act", config.hiddenAct), ("rms_norm_eps", config.rmsNormEps),
                           ("rope_parameters.rope_theta", config.ropeTheta),
                           ("max_position_embeddings", config.maxPositionEmbeddings),
                           ("tie_word_embeddings", config.tieWordEmbeddings),
                           ("cross_layer_interval", config.crossLayerInterval), ("qk_layer_norms", config.qkLayerNorms),
                           ("use_resampler", config.useResampler)],
                in: c.dump["config"] as? [String: Any], c.name)
        let v = config.vision
        compare("vision_config", [("embed_dim", v.embedDim), ("image_size", v.imageSize),
                                  ("intermediate_size", v.intermediateSize), ("patch_size", v.patchSize),
                                  ("num_hidden_layers", v.layerCount), ("num_attention_heads", v.headCount),
                                  ("num_channels", v.channelCount), ("hidden_act", v.hiddenAct),
                                  ("layer_norm_eps", v.layerNormEps)],
                in: c.dump["vision_config"] as? [String: Any], c.name)
        let p = config.perceiver
        compare("perceiver_config", [("resampler_n_latents", p.latentCount), ("resampler_depth", p.depth),
                                     ("resampler_n_heads", p.headCount), ("resampler_head_dim", p.headDim),
                                     ("qk_layer_norms_perceiver", p.qkLayerNorms)],
                in: c.dump["perceiver_config"] as? [String: Any], c.name)
    }

    func testEveryLayoutResolvesAsTransformersDoes() throws {
        let cases = try cases()
        XCTAssertGreaterThanOrEqual(cases.count, 25)
        var checked = Set<String>()
        for c in cases where c.expect != "refuse" {
            XCTAssertNil(c.dump["error"], "\(c.name): transformers refused a layout marked loadable")
            switch c.dump["class"] as? String {
            case "Idefics2Config": try checkIdefics2(c)
            case "MistralConfig", "LlamaConfig": try checkDecoder(c)
            case "IdeficsConfig": try checkIdefics(c)
            default: XCTFail("\(c.name): unexpected class \(c.dump["class"] ?? "none")")
            }
            checked.insert(c.dump["class"] as! String)
        }
        XCTAssertEqual(checked, ["Idefics2Config", "MistralConfig", "LlamaConfig", "IdeficsConfig"])
    }

    /// Layouts transformers refuses, and ones it accepts that this engine cannot run, fail with the field named.
    func testRefusedLayoutsNameTheField() throws {
        let expected = [
            "idefics2-text-kv-heads-null": "field text_config.num_key_value_heads is null",
            "idefics2-text-hidden-null": "field text_config.hidden_size is null",
            "idefics2-text-model-type-unknown": "field text_config.model_type is \"not-a-model\": only mistral and llama",
            "idefics2-rope-linear": "field text_config.rope_parameters.rope_type is \"linear\": only the default rotary",
            "idefics2-gelu-text": "field text_config.hidden_act is \"gelu\": this activation is not supported",
            "idefics2-llama-attention-bias": "field text_config.attention_bias is true",
            "unknown-model-type": "field model_type is \"not-a-model\": this model type is not supported",
        ]
        let refused = try cases().filter { $0.expect == "refuse" }
        XCTAssertEqual(Set(refused.map(\.name)), Set(expected.keys))
        for c in refused {
            let message = errorText {
                if case .idefics2 = try ModelFamily(directory: c.folder) { return try Idefics2Config(directory: c.folder) }
                return ()
            }
            XCTAssertTrue(message.hasPrefix(c.folder.appendingPathComponent("config.json").path + ": "), message)
            XCTAssertTrue(message.contains(expected[c.name]!), "\(c.name): \(message)")
        }
    }

    func testAWQConfigIsReadAndOtherQuantizationsAreRefusedBeforeTheirWeights() throws {
        let awq = try XCTUnwrap(cases().first { $0.name == "HuggingFaceM4/idefics2-8b-AWQ" })
        guard case .idefics2 = try ModelFamily(directory: awq.folder) else { return XCTFail("not read as Idefics2") }
        let config = try ConfigObject.required(directory: awq.folder, by: "the test")
        XCTAssertEqual(try StoredQuantization(config: config), .awq(groupSize: 128, modulesToNotConvert: ["vision_model", "connector"]))

        let published = config.values["quantization_config"] as! [String: Any]
        let refused: [(String, Any, String)] = [
            ("quant_method", "gptq", "field quantization_config.quant_method is \"gptq\": only AWQ checkpoints"),
            ("bits", 8, "field quantization_config.bits must be 4"),
            ("version", "gemv", "field quantization_config.version is \"gemv\": only AWQ's GEMM packing is read"),
            ("zero_point", false, "field quantization_config.zero_point is false"),
            ("group_size", 100, "field quantization_config.group_size is 100: a positive multiple of 32"),
            ("modules_to_not_convert", "vision_model", "field quantization_config.modules_to_not_convert is not a list"),
        ]
        for (field, value, expected) in refused {
            let folder = try temporaryDirectory()
            var values = config.values, quantization = published
            quantization[field] = value
            values["quantization_config"] = quantization
            try JSONSerialization.data(withJSONObject: values).write(to: folder.appendingPathComponent("config.json"))
            let message = errorText { try ModelFamily(directory: folder) }
            XCTAssertTrue(message.hasPrefix(folder.appendingPathComponent("config.json").path + ": " + expected), message)
        }
    }

    func testModulesToNotConvertMatchWholeDottedParts() {
        let patterns = ["vision_model", "connector", "lm_head"]
        XCTAssertTrue(StoredQuantization.names(patterns, module: "model.vision_model.encoder.layers.0.mlp.fc1"))
        XCTAssertTrue(StoredQuantization.names(patterns, module: "model.connector.modality_projection.gate_proj"))
        XCTAssertTrue(StoredQuantization.names(patterns, module: "lm_head"))
        XCTAssertFalse(StoredQuantization.names(patterns, module: "model.text_model.layers.0.mlp.gate_proj"))
        XCTAssertFalse(StoredQuantization.names(patterns, module: "model.vision_model_2.fc1"))
        XCTAssertTrue(StoredQuantization.names(["layers.1"], module: "model.text_model.layers.1.mlp.up_proj"))
        XCTAssertFalse(StoredQuantization.names(["layers.1"], module: "model.text_model.layers.11.mlp.up_proj"))
    }

    func testV1ConfigGivesItsDecoderAndImageShapes() throws {
        let config = try IdeficsConfig(directory: Fixtures.url("configs/layouts/idefics-9b"))
        XCTAssertEqual(config.crossLayerInterval, 4)
        XCTAssertEqual(config.crossLayerCount, 8)
        XCTAssertEqual(config.text.fullVocabSize, 32002)
        XCTAssertEqual(config.text.keyValueHeadCount, 32)
        XCTAssertEqual(config.imageSequenceLength, 64)
        XCTAssertEqual(config.vision.activation, .gelu)
        // transformers indexes past its last cross-attention block when the interval does not divide the layers.
        let odd = ConfigObject(path: "config.json", values: ["model_type": "idefics", "num_hidden_layers": 5,
                                                             "cross_layer_interval": 2])
        XCTAssertThrowsError(try IdeficsConfig(odd)) {
            XCTAssertEqual("\($0)", "config.json: field cross_layer_interval is 2; it must divide num_hidden_layers 5")
        }
        // `hidden_size` is read as the vision tower's `embed_dim`, as transformers' attribute map does.
        let alias = ConfigObject(path: "config.json", values: ["model_type": "idefics", "vision_config": ["hidden_size": 64,
                                                                                                          "num_attention_heads": 4]])
        XCTAssertEqual(try IdeficsConfig(alias).vision.embedDim, 64)
        // The decoder alone would skip the cross-attention blocks: refused, with the way out named.
        let tiny = Fixtures.url("models/tiny-idefics-plain")
        XCTAssertThrowsError(try Mistral(checkpoint: Checkpoint(directory: tiny))) {
            XCTAssertTrue("\($0)".contains("Idefics(checkpoint:)"), "\($0)")
        }
    }

    func testWrongTypesNameFileAndField() throws {
        let directory = try temporaryDirectory()
        let bad = #"{"model_type": "idefics2", "text_config": {"hidden_size": "4096"}, "vision_config": {"patch_size": 14.5}}"#
        try Data(bad.utf8).write(to: directory.appendingPathComponent("config.json"))
        XCTAssertEqual(errorText { try Idefics2Config(directory: directory) },
                       "\(directory.path)/config.json: field text_config.hidden_size is the string \"4096\", not an integer")
        let architecture = #"{"model_type": "idefics2", "architectures": ["Idefics2Model"]}"#
        try Data(architecture.utf8).write(to: directory.appendingPathComponent("config.json"))
        XCTAssertEqual(errorText { try ModelFamily(directory: directory) },
                       "\(directory.path)/config.json: field architectures names Idefics2Model: for model_type idefics2 "
                           + "only Idefics2ForConditionalGeneration is supported")
    }
}
