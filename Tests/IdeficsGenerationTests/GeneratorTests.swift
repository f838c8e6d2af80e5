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

    func testInvalidParametersAreNamedWithTheirRange() {
        let cases: [(GenerationRequest, String)] = [
            (.init(temperature: 0), "temperature must be in [0.0001, 10000.0], not 0.0"),
            (.init(temperature: 1e-30), "temperature must be in [0.0001, 10000.0], not 1e-30"),
            (.init(temperature: .nan), "temperature must be in [0.0001, 10000.0], not nan"),
            (.init(topP: 1.5), "top_p must be in (0, 1.0], not 1.5"),
            (.init(typicalP: 0), "typical_p must be in (0, 1.0], not 0.0"),
            (.init(topK: -1), "top_k must be in [0, 2147483647], not -1"),
            (.init(maxNewTokens: 0), "max_new_tokens must be in [1, 1048576], not 0"),
            (.init(maxNewTokens: -1), "max_new_tokens must be in [1, 1048576], not -1"),
            (.init(repetitionPenalty: 0), "repetition_penalty must be in [0.001, 1000.0], not 0.0"),
            (.init(stopStrings: [""]), "stop must be in a non-empty string, not \"\""),
            (penalized(.openAI(frequency: 0, presence: 2.5)), "presence_penalty must be in [-2.0, 2.0], not 2.5"),
            (penalized(.openAI(frequency: -3, presence: 0)), "frequency_penalty must be in [-2.0, 2.0], not -3.0"),
            (penalized(.tgi(frequency: .nan)), "frequency_penalty must be in [-2.0, 2.0], not nan"),
        ]
        for (request, message) in cases {
            XCTAssertThrowsError(try request.validate(), message) { XCTAssertEqual("\($0)", message) }
            XCTAssertThrowsError(try GenerationParameters(request: request), message) { error in
                XCTAssertEqual("\(error)", message)
                XCTAssertEqual((error as? GenerationError)?.isCallerFault, true)
            }
        }
    }

    private func penalized(_ penalty: OccurrencePenalty) -> GenerationRequest {
        var request = GenerationRequest()
        request.occurrencePenalty = penalty
        return request
    }

    /// OpenAI's penalties count the generated tokens only: token 1 (generated twice) loses 2 x 0.5 + 0.25, token 3
    /// (generated once) 0.5 + 0.25, the prompt's token 2 nothing. TGI's frequency penalty counts the whole sequence
    /// as a share: token 2 is 2 of 6 tokens, so it loses 1/3 x 1.5; token 1 is 3 of 6, 1/2 x 1.5. They apply before
    /// the greedy choice too, as in TGI.
    func testOccurrencePenaltiesCountAsOpenAIAndTGIDo() throws {
        let history = [2, 1, 2, 1, 3, 1], generated = 3 // prompt [2, 1, 2], then 1, 3, 1
        var openAI: [Float] = [0, 4, 1, 3, -1]
        LogitsProcessors.occurrencePenalty(&openAI, history: history, generatedCount: generated,
                                           .openAI(frequency: 0.5, presence: 0.25))
        XCTAssertEqual(openAI, [0, 4 - 1.25, 1, 3 - 0.75, -1])
        var tgi: [Float] = [0, 4, 1, 3, -1]
        LogitsProcessors.occurrencePenalty(&tgi, history: history, generatedCount: generated, .tgi(frequency: 1.5))
        XCTAssertEqual(tgi, [0, 4 - Float(3) / 6 * 1.5, 1 - Float(2) / 6 * 1.5, 3 - Float(1) / 6 * 1.5, -1])

        var parameters = try GenerationParameters(request: penalized(.openAI(frequency: 2, presence: 0)))
        var scores: [Float] = [0, 4, 1, 3.5, -1]
        LogitsProcessors.process(&scores, history: history, generatedCount: generated, parameters: parameters)
        XCTAssertEqual(Sampler.argmax(scores), 3) // token 1: 4 - 2 x 2 = 0; token 3: 3.5 - 2 = 1.5; token 2 keeps 1
        parameters.occurrencePenalty = nil
        scores = [0, 4, 1, 3.5, -1]
        LogitsProcessors.process(&scores, history: history, generatedCount: generated, parameters: parameters)
        XCTAssertEqual(Sampler.argmax(scores), 1)
    }

    /// transformers ignores the sampling fields of a greedy generation config; so do we (a config with
    /// temperature 0 and do_sample false is valid), but a request that samples with them is refused.
    func testGreedyGenerationIgnoresSamplingFieldsOfTheConfig() throws {
        var config = GenerationConfig()
        config.temperature = 0
        config.topP = 0
        XCTAssertFalse(try GenerationParameters(config: config).doSample)
        XCTAssertThrowsError(try GenerationParameters(request: .init(seed: 1), config: config)) {
            XCTAssertEqual("\($0)", "temperature must be in [0.0001, 10000.0], not 0.0")
        }
    }

    /// NaN logits would make the argmax pick token 0 (every comparison false) and answer garbage without a word.
    /// Prompt log-probabilities come only from ContinuousBatch; a lone generation refuses the request rather than
    /// answering without them. Alternatives are listed most likely first, masked (-inf) tokens left out.
    func testPromptLogprobsAreRefusedHereAndAlternativesAreFinite() throws {
        struct Fixed: NextTokenModel {
            var contextLength = 100
            mutating func logits(after tokens: [Int]) throws -> [Float] { [0, 3, 1, 2] }
        }
        var model = Fixed()
        var request = GenerationRequest(maxNewTokens: 1)
        request.promptLogprobs = true
        XCTAssertThrowsError(try Generator.generate(model: &model, prompt: [1], parameters: GenerationParameters(request: request),
                                                    text: Letters())) {
            XCTAssertEqual("\($0)", "\(GenerationError.invalidParameter(name: "prompt_logprobs", value: "true", allowed: "false here: ContinuousBatch (the server's engine) computes them"))")
        }
        request = GenerationRequest(maxNewTokens: 1, topK: 2)
        request.topLogprobs = 3
        let token = try Generator.generate(model: &model, prompt: [1], parameters: GenerationParameters(request: request),
                                           text: Letters()).tokens[0]
        XCTAssertEqual(token.top.map(\.id), [1, 3]) // top_k 2 leaves two finite scores
        XCTAssertEqual(token.top.first?.logprob, token.logprob)
    }

    func testNonFiniteLogitsStopGenerationWithAnError() throws {
        struct Overflowing: NextTokenModel {
            var contextLength = 100
            var steps = 0
            mutating func logits(after tokens: [Int]) throws -> [Float] {
                steps += 1
                return steps < 3 ? [0, 1, 0] : [0, .nan, .infinity]
            }
        }
        var model = Overflowing()
        let parameters = try GenerationParameters(request: .init(maxNewTokens: 5))
        XCTAssertThrowsError(try Generator.generate(model: &model, prompt: [1], parameters: parameters, text: Letters())) {
            XCTAssertEqual($0 as? GenerationError, .nonFiniteLogits(step: 2))
            XCTAssertEqual(($0 as? GenerationError)?.isCallerFault, false)
        }
    }

    func testSamplingFlagsTurnSamplingOnAndConfigDefaultsFollowTransformers() throws {
        XCTAssertFalse(try GenerationParameters().doSample)
        XCTAssertEqual(try GenerationParameters().topK, 50)
        XCTAssertTrue(try GenerationParameters(request: .init(topK: 5)).doSample)
        XCTAssertFalse(try GenerationParameters(request: .init(doSample: false, temperature: 0.5)).doSample)
    }
}
