import Foundation

/// A model that turns tokens into next-token logits, keeping its own cache: each call continues where the
/// previous one stopped. Image-aware models splice their image features in when the prompt arrives.
public protocol NextTokenModel {
    /// The largest number of positions (prompt and generated) the model accepts.
    var contextLength: Int { get }
    /// Runs `tokens` after everything seen so far; returns the logits of the last of them.
    mutating func logits(after tokens: [Int]) throws -> [Float]
    /// Starts a generation: runs the whole prompt (a model with a cache may reuse the prefix it already holds).
    mutating func prefill(_ prompt: [Int]) throws -> [Float]
}

extension NextTokenModel {
    public mutating func prefill(_ prompt: [Int]) throws -> [Float] { try logits(after: prompt) }
}

/// Turns generated ids into text piece by piece (a streaming detokenizer).
public protocol IncrementalTextDecoder {
    /// The text that `id` completes (possibly empty while a multi-byte character is incomplete).
    mutating func append(_ id: Int) -> String
    /// Whatever is still held back at the end.
    mutating func flush() -> String
}

public struct GeneratedToken: Sendable, Equatable {
    public let id: Int
    /// The text this token completes; concatenated over a generation it is the generated text.
    public let text: String
    /// log-probability of the token under the distribution it was chosen from (after the logits processors).
    public let logprob: Float
}

public struct GenerationTimings: Sendable, Equatable {
    public var prefillSeconds: Double = 0
    public var decodeSeconds: Double = 0
    public var promptTokens = 0
    public var generatedTokens = 0

    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    /// Tokens after the first, which prefill produced, per second of decoding.
    public var decodeTokensPerSecond: Double {
        decodeSeconds > 0 ? Double(max(0, generatedTokens - 1)) / decodeSeconds : 0
    }
}

public struct GenerationOutput: Sendable, Equatable {
    public var promptTokenIds: [Int]
    public var tokens: [GeneratedToken]
    public var text: String
    public var finishReason: FinishReason
    public var timings: GenerationTimings

    public var generatedTokenIds: [Int] { tokens.map(\.id) }
}

public enum Generator {
    /// Generates after `prompt` with transformers' semantics: the logits processors of `parameters`, then greedy
    /// choice or seeded sampling; stops at an end-of-sequence token, a stop string in the text, `maxNewTokens`, or
    /// the model's context length. `onToken` sees every token as it is chosen; returning false stops early.
    public static func generate<Model: NextTokenModel, Text: IncrementalTextDecoder>(
        model: inout Model, prompt: [Int], parameters: GenerationParameters, text decoder: Text,
        onToken: (GeneratedToken) -> Bool = { _ in true }
    ) throws -> GenerationOutput {
        guard !prompt.isEmpty else { throw GenerationError("the prompt is empty") }
        guard prompt.count < model.contextLength else {
            throw GenerationError("the prompt has \(prompt.count) tokens; the model's context holds \(model.contextLength), "
                                  + "leaving no room to generate")
        }
        var decoder = decoder
        var random = SeededGenerator(seed: parameters.seed)
        var history = prompt
        var output = GenerationOutput(promptTokenIds: prompt, tokens: [], text: "", finishReason: .length,
                                      timings: GenerationTimings(promptTokens: prompt.count))
        let clock = ContinuousClock()
        var start = clock.now
        var logits = try model.prefill(prompt)
        output.timings.prefillSeconds = seconds(clock.now - start)
        start = clock.now
        let limit = min(parameters.maxNewTokens, model.contextLength - prompt.count)
        var finish: FinishReason?
        while finish == nil {
            LogitsProcessors.process(&logits, history: history, generatedCount: output.tokens.count, parameters: parameters)
            let id = parameters.doSample ? Sampler.sample(logits, using: &random) : Sampler.argmax(logits)
            let logprob = LogitsProcessors.logSoftmax(logits)[id]
            history.append(id)
            let token = GeneratedToken(id: id, text: decoder.append(id), logprob: logprob)
            output.tokens.append(token)
            output.text += token.text
            if parameters.eosTokenIds.contains(id) {
                finish = .eosToken
            } else if parameters.stopStrings.contains(where: { output.text.contains($0) }) {
                finish = .stopSequence
            } else if output.tokens.count >= limit {
                finish = .length
            }
            let keepGoing = onToken(token)
            if finish == nil, !keepGoing { finish = .length }
            if finish == nil { logits = try model.logits(after: [id]) }
        }
        let rest = decoder.flush()
        output.text += rest
        output.finishReason = finish!
        output.timings.decodeSeconds = seconds(clock.now - start)
        output.timings.generatedTokens = output.tokens.count
        return output
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}
