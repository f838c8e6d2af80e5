import Foundation
import TestSupport
import XCTest

/// Class 1 of the robustness issue: numbers from the command line and from config files are range-checked where
/// they enter, and the message names the option or file and field, the value and what is allowed.
final class NumericInputTests: XCTestCase {
    /// Refused by the argument parser's validation (exit 64) before any model is loaded; negative values are read
    /// as values (`--limit -1`), not as unknown options.
    func testNumericOptionsOutsideTheirRangeAreRefusedBeforeLoading() throws {
        let image = CLI.exampleImage
        let cases: [([String], String)] = [
            (["eval", "--data", "x.jsonl", "--limit", "-1"], "--limit must be in 1..."),
            (["eval", "--data", "x.jsonl", "--limit", "0"], "--limit must be in 1..."),
            (["eval", "--data", "x.jsonl", "--batch-size", "0"], "--batch-size must be in 1...256, not 0"),
            (["bench", "--prompt-tokens", "-20"], "--prompt-tokens must be in 1...1048576, not -20"),
            (["bench", "--new-tokens", "0"], "--new-tokens must be in 1...1048576, not 0"),
            (["bench", "--runs", "1000000"], "--runs must be in 1...1000, not 1000000"),
            (["bench-image", "--image", image, "--runs", "-3"], "--runs must be in 1...1000, not -3"),
            (["bench-ops", "--runs", "0"], "--runs must be in 1...1000, not 0"),
            (["bench-ops", "--threads", "0"], "--threads must be in 1...4096, not 0"),
            (["generate", "--prompt", "hi", "--threads", "0"], "--threads must be in 1...4096, not 0"),
            (["generate", "--prompt", "hi", "--max-new-tokens", "-1"], "max_new_tokens must be in [1, 1048576], not -1"),
            (["generate", "--prompt", "hi", "--temperature", "0"], "temperature must be in [0.0001, 10000.0], not 0.0"),
            (["generate", "--prompt", "hi", "--top-p", "nan"], "top_p must be in (0, 1.0], not nan"),
            (["generate", "--prompt", "hi", "--max-image-pixels", "0"], "--max-image-pixels must be in 1...400000000, not 0"),
            (["generate", "--prompt", "hi", "--longest-edge", "100000"], "--longest-edge must be in 1...4096, not 100000"),
            (["chat", "--max-new-tokens", "0"], "--max-new-tokens must be in 1...1048576, not 0"),
        ]
        for (arguments, message) in cases { try CLI.assertRefused(arguments, status: 64, message) }
    }

    /// Values that would divide by zero, give NaNs or an empty resize are refused at load, file and field named.
    func testConfigNumbersOutsideTheirRangeNameFileAndField() throws {
        let cases: [(String, String, (inout [String: Any]) -> Void, String)] = [
            ("config.json", "text_config.num_key_value_heads", { Self.setText(&$0, "num_key_value_heads", 0) }, "is 0"),
            ("config.json", "text_config.rms_norm_eps", { Self.setText(&$0, "rms_norm_eps", 0) }, "must be a finite number > 0"),
            ("config.json", "text_config.head_dim", { Self.setText(&$0, "head_dim", 7) }, "must be even and positive"),
            ("config.json", "text_config.rope_parameters.rope_theta",
             { Self.setText(&$0, "rope_parameters", ["rope_theta": -1, "rope_type": "default"]) }, "must be a finite number > 0"),
            ("config.json", "text_config.vocab_size", { Self.setText(&$0, "vocab_size", 1 << 40) }, "must be in 1...16777216"),
            ("config.json", "image_token_id", { $0["image_token_id"] = 1 << 30 }, "but tokenizer.json gives <image> the id"),
            ("config.json", "vision_config.layer_norm_eps", { Self.set(&$0, "vision_config", "layer_norm_eps", -1e-6) },
             "must be a finite number > 0"),
            ("generation_config.json", "max_new_tokens", { $0["max_new_tokens"] = -5 }, "must be in [1, 1048576], not -5"),
            ("generation_config.json", "top_p", { $0["do_sample"] = true; $0["top_p"] = 2 }, "must be in (0, 1.0], not 2.0"),
            ("preprocessor_config.json", "image_std", { $0["image_std"] = [0, 0.5, 0.5] }, "must be finite and > 0"),
            ("preprocessor_config.json", "rescale_factor", { $0["rescale_factor"] = 0 }, "must be a finite number > 0"),
            ("preprocessor_config.json", "size.longest_edge", { $0["size"] = ["longest_edge": 0, "shortest_edge": 378] },
             "must be in 1...4096"),
        ]
        for (file, field, edit, message) in cases {
            let folder = try temporaryDirectory()
            let model = try CLI.demoCopy(in: folder, edits: [file: edit])
            try CLI.assertRefused(["generate", "--model", model.path, "--prompt", "hi", "--max-new-tokens", "1"],
                                  model.appendingPathComponent(file).path, field, message)
        }
    }

    private static func set(_ object: inout [String: Any], _ section: String, _ key: String, _ value: Any) {
        var nested = object[section] as? [String: Any] ?? [:]
        nested[key] = value
        object[section] = nested
    }

    private static func setText(_ object: inout [String: Any], _ key: String, _ value: Any) {
        set(&object, "text_config", key, value)
    }
}
