import Foundation
@testable import Idefics
import IdeficsCheckpoint
import IdeficsImages
import IdeficsModels
import IdeficsTokenizer
import TestSupport
import XCTest

/// The files of the published Idefics2 repositories (`hub/<org>/<repo>/`, no weights) against transformers 5.23 and
/// the original processor (`hub/prompts.json`, from `scripts/make_config_fixtures.py`): which chat template is found,
/// the model card's conversations rendered through it, and the prompt ids after image expansion.
final class PublishedCheckpointTests: XCTestCase {
    private func references() throws -> [String: [String: Any]] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Fixtures.data("hub/prompts.json")) as? [String: [String: Any]])
    }

    private func chatMessages(_ list: [[String: Any]]) -> [ChatMessage] {
        list.map { message in
            ChatMessage(role: message["role"] as! String, parts: (message["content"] as! [[String: Any]]).map {
                $0["type"] as? String == "image" ? .image : .text($0["text"] as! String)
            })
        }
    }

    func testChatTemplatesRenderingsAndPromptIds() throws {
        let references = try references()
        XCTAssertEqual(Set(references.keys), ["HuggingFaceM4/idefics2-8b-base", "HuggingFaceM4/idefics2-8b",
                                              "HuggingFaceM4/idefics2-8b-chatty", "HuggingFaceM4/idefics2-8b-AWQ",
                                              "TIGER-Lab/Mantis-8B-Idefics2"])
        for (repo, reference) in references {
            let folder = Fixtures.url("hub/\(repo)")
            let config = try Idefics2Config(directory: folder)
            XCTAssertEqual(config.perceiver.latentCount, reference["image_seq_len"] as? Int, repo)
            let processor = try Idefics2ImageProcessorConfig(contentsOf: folder.appendingPathComponent("preprocessor_config.json"))
            XCTAssertEqual(processor.doImageSplitting, reference["do_image_splitting"] as? Bool, repo)

            let found = try ChatTemplate.load(directory: folder)
            let origins = ["processor": "processor_config.json", "tokenizer": "tokenizer_config.json"]
            XCTAssertEqual(found?.origin, origins[reference["template_origin"] as! String], repo)
            let template = try found ?? ChatTemplate(source: Idefics2Prompt.defaultChatTemplate,
                                                     specialTokens: ChatTemplate.specialTokens(directory: folder))
            XCTAssertEqual(template.source, reference["chat_template_used"] as? String, repo)

            let tokenizer = try Tokenizer(directory: folder)
            let cases = try XCTUnwrap(reference["cases"] as? [[String: Any]])
            XCTAssertGreaterThanOrEqual(cases.count, 3, repo)
            for (index, item) in cases.enumerated() {
                var prompt = item["prompt"] as! String
                if item["chat"] as! Bool {
                    let messages = chatMessages(item["messages"] as! [[String: Any]])
                    let rendered = try template.render(messages: messages, addGenerationPrompt: true)
                    XCTAssertEqual(rendered, prompt, "\(repo) case \(index)")
                    prompt = rendered
                }
                let expanded = try Idefics2Prompt.expand(prompt, imageCount: Idefics2Prompt.placeholderCount(prompt),
                                                         imageSequenceLength: config.perceiver.latentCount,
                                                         splitImages: processor.doImageSplitting)
                XCTAssertEqual(tokenizer.encode(expanded), item["expanded_ids"] as! [Int], "\(repo) case \(index)")
            }
        }
    }

    /// The published idefics2-8b files around a tiny model's weights: the pipeline loads, falls back to the Idefics2
    /// default template (and says so) and generates.
    func testPipelineOnThePublishedFilesUsesTheDefaultTemplate() throws {
        let folder = try temporaryDirectory()
        let published = Fixtures.url("hub/HuggingFaceM4/idefics2-8b"), tiny = Fixtures.url("models/tiny-f32")
        for name in try FileManager.default.contentsOfDirectory(atPath: published.path) where name != "config.json" {
            try FileManager.default.copyItem(at: published.appendingPathComponent(name), to: folder.appendingPathComponent(name))
        }
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: tiny.appendingPathComponent(name), to: folder.appendingPathComponent(name))
        }
        let pipeline = try Pipeline(pathOrID: folder.path, threads: 1)
        XCTAssertTrue(pipeline.usesDefaultChatTemplate)
        let (text, _) = try pipeline.render([.user(.text("Hello"))])
        XCTAssertEqual(text, "User: Hello<end_of_utterance>\nAssistant:")
        let output = try pipeline.generate(messages: [.user(.text("Hello"))], request: GenerationRequest(maxNewTokens: 3))
        XCTAssertEqual(output.generatedTokenIds.count, 3)
    }

    /// idefics2-8b-base has 32002 embedding rows while its tokenizer knows `<end_of_utterance>` (32002): a prompt with
    /// it is refused by name instead of reaching the embedding lookup. The model here is a random one-layer Mistral
    /// with that vocabulary and tied embeddings (no lm_head.weight), written on the fly.
    func testTokenWithoutEmbeddingIsRefused() throws {
        let folder = try temporaryDirectory()
        let base = Fixtures.url("hub/HuggingFaceM4/idefics2-8b-base")
        for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
            try FileManager.default.copyItem(at: base.appendingPathComponent(name), to: folder.appendingPathComponent(name))
        }
        let config = #"{"model_type": "mistral", "vocab_size": 32002, "hidden_size": 8, "intermediate_size": 16, "#
            + #""num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "tie_word_embeddings": true}"#
        try Data(config.utf8).write(to: folder.appendingPathComponent("config.json"))
        var writer = SafetensorsWriter()
        var seed: UInt64 = 7
        func random(_ count: Int) -> [Float] {
            (0..<count).map { _ in
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                return Float(Int(seed >> 40) % 2001 - 1000) / 2000
            }
        }
        let shapes: [(String, [Int])] = [
            ("model.embed_tokens.weight", [32002, 8]), ("model.norm.weight", [8]),
            ("model.layers.0.input_layernorm.weight", [8]), ("model.layers.0.post_attention_layernorm.weight", [8]),
            ("model.layers.0.self_attn.q_proj.weight", [8, 8]), ("model.layers.0.self_attn.k_proj.weight", [4, 8]),
            ("model.layers.0.self_attn.v_proj.weight", [4, 8]), ("model.layers.0.self_attn.o_proj.weight", [8, 8]),
            ("model.layers.0.mlp.gate_proj.weight", [16, 8]), ("model.layers.0.mlp.up_proj.weight", [16, 8]),
            ("model.layers.0.mlp.down_proj.weight", [8, 16]),
        ]
        for (name, shape) in shapes { try writer.add(name, shape: shape, floats: random(shape.reduce(1, *))) }
        try writer.write(to: folder.appendingPathComponent("model.safetensors").path)

        let pipeline = try Pipeline(pathOrID: folder.path, threads: 1)
        XCTAssertTrue(pipeline.decoder.config.tieWordEmbeddings)
        XCTAssertEqual(try pipeline.generate(prompt: "Hello", request: GenerationRequest(maxNewTokens: 2)).generatedTokenIds.count, 2)
        XCTAssertEqual(errorText { try pipeline.generate(prompt: "Hi<end_of_utterance>") },
                       "the prompt has token 32002 (\"<end_of_utterance>\"), but \(folder.path) has embeddings for ids 0..<32002 only")
    }

    func testFoldersWeCannotRunSayWhy() throws {
        let v1 = Fixtures.url("configs/layouts/idefics-9b")
        XCTAssertEqual(errorText { try Pipeline(pathOrID: v1.path) },
                       "\(v1.path)/tokenizer.json: cannot read file: missing (the checkpoint folder has no tokenizer)")
        let rope = Fixtures.url("configs/layouts/idefics2-rope-linear")
        XCTAssertEqual(errorText { try Pipeline(pathOrID: rope.path) }, "\(rope.path)/config.json: field "
                           + "text_config.rope_parameters.rope_type is \"linear\": only the default rotary embedding is supported")
        let mistral = Fixtures.url("configs/layouts/mistral-sparse")
        XCTAssertEqual(errorText { try Pipeline(pathOrID: mistral.path) },
                       "\(mistral.path)/tokenizer.json: cannot read file: missing (the checkpoint folder has no tokenizer)")
        let sentencepiece = try temporaryDirectory()
        try FileManager.default.copyItem(at: Fixtures.url("hub/HuggingFaceM4/idefics2-8b/config.json"),
                                         to: sentencepiece.appendingPathComponent("config.json"))
        try Data().write(to: sentencepiece.appendingPathComponent("tokenizer.model"))
        XCTAssertTrue(errorText { try Pipeline(pathOrID: sentencepiece.path) }
            .hasPrefix("\(sentencepiece.path)/tokenizer.model: a sentencepiece model without tokenizer.json is not read"))
    }
}
