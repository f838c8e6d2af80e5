import Foundation
import IdeficsGeneration
import TestSupport
import XCTest

/// Each logits processor, and whole chains as generate() builds them from a generation config, against
/// transformers 5.23 (Tests/Fixtures/generation/logits_processors.json, scripts/make_generation_fixtures.py).
final class LogitsProcessorParityTests: XCTestCase {
    private struct Input {
        let name: String
        let logits: [Float]
        let history: [Int]
        let promptLength: Int
    }

    private var fixture: [String: Any] = [:]
    private var inputs: [Input] = []

    override func setUpWithError() throws {
        fixture = try JSONSerialization.jsonObject(with: Fixtures.data("generation/logits_processors.json")) as! [String: Any]
        inputs = (fixture["inputs"] as! [[String: Any]]).map {
            Input(name: $0["name"] as! String, logits: floats($0["logits"]), history: $0["input_ids"] as! [Int],
                  promptLength: $0["prompt_length"] as! Int)
        }
    }

    private func floats(_ value: Any?) -> [Float] {
        (value as! [Any]).map { item in
            switch item {
            case let text as String: text == "-inf" ? -.infinity : text == "inf" ? .infinity : .nan
            case let number as NSNumber: number.floatValue
            default: .nan
            }
        }
    }

    /// Equal values, or, where the reference depends on how an unstable sort orders ties, an equal number kept.
    private func assertSame(_ actual: [Float], _ expected: [Float], tieDependent: Bool, _ label: String) {
        if tieDependent {
            XCTAssertEqual(actual.filter(\.isFinite).count, expected.filter(\.isFinite).count, label)
            return
        }
        XCTAssertEqual(actual.map(\.isFinite), expected.map(\.isFinite), label)
        for (a, e) in zip(actual, expected) where e.isFinite {
            XCTAssertEqual(a, e, accuracy: 1e-5 * max(1, abs(e)), label)
        }
    }

    private func apply(_ className: String, _ params: [String: Any], to scores: inout [Float], input: Input) {
        switch className {
        case "RepetitionPenaltyLogitsProcessor":
            LogitsProcessors.repetitionPenalty(&scores, history: input.history, penalty: (params["penalty"] as! NSNumber).floatValue)
        case "TemperatureLogitsWarper":
            LogitsProcessors.temperature(&scores, (params["temperature"] as! NSNumber).floatValue)
        case "TopKLogitsWarper":
            LogitsProcessors.topK(&scores, params["top_k"] as! Int)
        case "TopPLogitsWarper":
            LogitsProcessors.topP(&scores, (params["top_p"] as! NSNumber).floatValue, minTokensToKeep: params["min_tokens_to_keep"] as! Int)
        case "TypicalLogitsWarper":
            LogitsProcessors.typical(&scores, mass: (params["mass"] as! NSNumber).floatValue, minTokensToKeep: params["min_tokens_to_keep"] as! Int)
        case "NoBadWordsLogitsProcessor":
            LogitsProcessors.banBadWords(&scores, history: input.history, badWords: params["bad_word_ids"] as! [[Int]],
                                         eosTokenIds: [fixture["eos_token_id"] as! Int])
        case "MinNewTokensLengthLogitsProcessor":
            if input.history.count - (params["prompt_length_to_skip"] as! Int) < params["min_new_tokens"] as! Int {
                LogitsProcessors.banEndOfSequence(&scores, eosTokenIds: params["eos_token_id"] as! [Int])
            }
        default:
            XCTFail("no Swift counterpart for \(className)")
        }
    }

    func testEachProcessorMatchesTransformers() {
        for processor in fixture["processors"] as! [[String: Any]] {
            let name = processor["name"] as! String
            let outputs = processor["outputs"] as! [Any]
            let ties = processor["tie_dependent"] as! [Bool]
            for (index, input) in inputs.enumerated() {
                let params = (processor["params"] as? [String: Any]) ?? (processor["params_per_input"] as! [[String: Any]])[index]
                var scores = input.logits
                apply(processor["class"] as! String, params, to: &scores, input: input)
                assertSame(scores, floats(outputs[index]), tieDependent: ties[index], "\(name) on \(input.name)")
            }
        }
    }

    func testChainsBuiltFromGenerationConfigsMatchGenerate() throws {
        for chain in fixture["chains"] as! [[String: Any]] {
            let name = chain["name"] as! String
            var config = try JSONDecoder().decode(GenerationConfig.self, from: JSONSerialization.data(withJSONObject: chain["generation_config"]!))
            config.eosTokenIds = [fixture["eos_token_id"] as! Int]
            let parameters = try GenerationParameters(config: config)
            let outputs = chain["outputs"] as! [[String: Any]]
            let probabilities = chain["probabilities"] as! [Any]
            let ties = chain["tie_dependent"] as! [Bool]
            for (index, input) in inputs.enumerated() {
                var scores = input.logits
                LogitsProcessors.process(&scores, history: input.history,
                                         generatedCount: input.history.count - input.promptLength, parameters: parameters)
                assertSame(scores, floats(outputs[index]["final"]), tieDependent: ties[index], "\(name) on \(input.name)")
                if !ties[index] {
                    let expected = floats(probabilities[index])
                    for (p, e) in zip(LogitsProcessors.softmax(scores), expected) {
                        XCTAssertEqual(p, e, accuracy: 1e-6, "\(name) probabilities on \(input.name)")
                    }
                }
            }
        }
    }
}
