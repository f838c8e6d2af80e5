import IdeficsGeneration
import XCTest

/// A model whose next-token logits are scripted: token `plan[i]` wins at step i.
private struct ScriptedModel: NextTokenModel {
    let plan: [Int]
    let vocabulary = 8
    var contextLength = 100
    var calls: [[Int]] = []

    mutating func logits(after tokens: [Int]) throws -> [Float] {
        calls.append(tokens)
        var logits = [Float](repeating: 0, count: vocabulary)
        let step = calls.count - 1
        if step < plan.count { logits[plan[step]] = 5 }
        logits[(step + 1) % vocabulary] += 1 // a runner-up, so that bans and penalties have a visible effect
        return logits
    }
}

/// Token i is the letter "a" + i; token 7 is a special token with no text.
private struct Letters: IncrementalTextDecoder {
    mutating func append(_ id: Int) -> String { id == 7 ? "" : String(UnicodeScalar(UInt8(97 + id))) }
    mutating func flush() -> String { "" }
}

final class GeneratorTests: XCTestCase {
    private func run(_ plan: [Int], request: GenerationRequest = .init(), config: GenerationConfig = .init(),
                     context: Int = 100) throws -> (GenerationOutput, [[Int]]) {
        var model = ScriptedModel(plan: plan, contextLength: context)
        let parameters = try GenerationParameters(request: request, config: config)
        let output = try Generator.generate(model: &model, prompt: [1, 2], parameters: parameters, text: Letters())
        return (output, model.calls)
    }

    func testGreedyFeedsEachChosenTokenBackOnce() throws {
        let (output, calls) = try run([3, 4, 5], request: .init(maxNewTokens: 3))
        XCTAssertEqual(output.generatedTokenIds, [3, 4, 5])
        XCTAssertEqual(output.text, "def")
        XCTAssertEqual(output.finishReason, .length)
        XCTAssertEqual(calls, [[1, 2], [3], [4]])
    }

    func testStopsAtAnyEndOfSequenceToken() throws {
        var config = GenerationConfig()
        config.eosTokenIds = [2, 7]
        let (output, _) = try run([3, 7, 5], config: config)
        XCTAssertEqual(output.generatedTokenIds, [3, 7])
        XCTAssertEqual(output.finishReason, .eosToken)
    }

    func testStopStringEndsGenerationAndStaysInTheText() throws {
        let (output, _) = try run([3, 4, 5, 6], request: .init(stopStrings: ["ef"]))
        XCTAssertEqual(output.text, "def")
        XCTAssertEqual(output.finishReason, .stopSequence)
    }

    func testBadWordsAreNeverChosen() throws {
        let (output, _) = try run([3, 3], request: .init(maxNewTokens: 2, badWordsIds: [[3]]))
        XCTAssertEqual(output.generatedTokenIds, [1, 2], "the runner-up wins when the planned token is banned")
    }

    func testContextLengthBoundsGenerationAndRejectsLongPrompts() throws {
        let (output, _) = try run([3, 4, 5, 6], request: .init(maxNewTokens: 10), context: 4)
        XCTAssertEqual(output.generatedTokenIds, [3, 4])
        XCTAssertThrowsError(try run([3], context: 2)) { error in
            XCTAssertEqual("\(error)", "the prompt has 2 tokens; the model's context holds 2, leaving no room to generate")
        }
    }

    func testSamplingIsReproducibleForASeed() throws {
        let request = GenerationRequest(maxNewTokens: 20, temperature: 3, seed: 42)
        let first = try run(Array(repeating: 0, count: 20), request: request).0.generatedTokenIds
        let again = try run(Array(repeating: 0, count: 20), request: request).0.generatedTokenIds
        let other = try run(Array(repeating: 0, count: 20), request: .init(maxNewTokens: 20, temperature: 3, seed: 7)).0.generatedTokenIds
        XCTAssertEqual(first, again)
        XCTAssertNotEqual(first, other)
        XCTAssertGreaterThan(Set(first).count, 2, "a hot temperature must spread the choices")
    }

    func testInvalidParametersAreNamed() {
        XCTAssertThrowsError(try GenerationParameters(request: .init(temperature: 0))) {
            XCTAssertEqual("\($0)", "temperature must be > 0 (got 0.0)")
        }
        XCTAssertThrowsError(try GenerationParameters(request: .init(topP: 1.5))) {
            XCTAssertEqual("\($0)", "top_p must be in (0, 1] (got 1.5)")
        }
        XCTAssertThrowsError(try GenerationParameters(request: .init(maxNewTokens: 0))) {
            XCTAssertEqual("\($0)", "max_new_tokens must be > 0 (got 0)")
        }
    }

    func testSamplingFlagsTurnSamplingOnAndConfigDefaultsFollowTransformers() throws {
        XCTAssertFalse(try GenerationParameters().doSample)
        XCTAssertEqual(try GenerationParameters().topK, 50)
        XCTAssertTrue(try GenerationParameters(request: .init(topK: 5)).doSample)
        XCTAssertFalse(try GenerationParameters(request: .init(doSample: false, temperature: 0.5)).doSample)
    }
}
