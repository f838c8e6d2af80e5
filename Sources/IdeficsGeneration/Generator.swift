import Foundation
import IdeficsTensors

/// A model that turns tokens into next-token logits, keeping its own cache: each call continues where the
/// previous one stopped. Image-aware models splice their image features in when the prompt arrives.
public protocol NextTokenModel {
    /// The largest number of positions (prompt and generated) the model accepts.
    var contextLength: Int { get }
    /// Runs `tokens` after everything seen so far; returns the logits of the last of them.
    mutating func logits(after tokens: [Int]) throws -> [Float]
    /// Starts a generation: runs the whole prompt (a model with a cache may reuse the prefix it already holds).
    mutating func prefill(_ prompt: [Int]) throws -> [Float]
    /// How many tokens of the last prefilled prompt came from the cache instead of being computed.
    var reusedPromptTokens: Int { get }
    /// Makes room for `positions` in all, so that the cache does not grow (and copy) while decoding.
    mutating func reserve(positions: Int)
}

/// A model whose sessions can run together: one batched call for several rows' new tokens.
public protocol BatchedNextTokenModel: NextTokenModel {
    /// Prefills every session with its prompt in one batched pass.
    static func prefill(_ sessions: inout [Self], prompts: [[Int]]) throws -> [[Float]]
    /// Runs `tokens[i]` after everything `sessions[rows[i]]` has seen; returns each row's last logits.
    static func step(_ sessions: inout [Self], rows: [Int], tokens: [[Int]]) throws -> [[Float]]
}

extension NextTokenModel {
    public mutating func prefill(_ prompt: [Int]) throws -> [Float] { try logits(after: prompt) }
    public var reusedPromptTokens: Int { 0 }
    public mutating func reserve(positions: Int) {}
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
    /// The most likely tokens of that distribution, most likely first (ties by id): as many as
    /// `GenerationParameters.topLogprobs` asks for, none by default.
    public var top: [TokenLogprob] = []
}

/// A token and its log-probability under one distribution.
public struct TokenLogprob: Sendable, Equatable {
    public let id: Int
    public let logprob: Float

    public init(id: Int, logprob: Float) {
        (self.id, self.logprob) = (id, logprob)
    }
}

public struct GenerationTimings: Sendable, Equatable {
    public var prefillSeconds: Double = 0
    public var decodeSeconds: Double = 0
    public var promptTokens = 0
    /// Prompt tokens whose keys and values were already cached (a chat's earlier turns); not computed again.
    public var reusedPromptTokens = 0
    public var generatedTokens = 0

    /// Computed prompt tokens per second of prefill.
    public var prefillTokensPerSecond: Double {
        prefillSeconds > 0 ? Double(promptTokens - reusedPromptTokens) / prefillSeconds : 0
    }
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
    /// With `GenerationParameters.promptLogprobs`: each prompt token's log-probability given the tokens before it
    /// (raw logits, no processors; nil for the first, which nothing predicts), aligned with `promptTokenIds`.
    /// Empty otherwise.
    public var promptLogprobs: [Float?] = []

    public var generatedTokenIds: [Int] { tokens.map(\.id) }
}

/// One sequence being generated: its logits processing, choice, text and stop conditions.
/// Single and batched generation drive the same state, so a batch row behaves exactly like a lone request.
struct SequenceState<Text: IncrementalTextDecoder> {
    let parameters: GenerationParameters
    let limit: Int
    var decoder: Text
    var random: SeededGenerator
    var history: [Int]
    var output: GenerationOutput
    var finish: FinishReason?

    init(prompt: [Int], contextLength: Int, parameters: GenerationParameters, text: Text) throws {
        guard !prompt.isEmpty else { throw GenerationError.emptyPrompt }
        guard prompt.count < contextLength else {
            throw GenerationError.promptTooLong(tokens: prompt.count, context: contextLength)
        }
        self.parameters = parameters
        limit = min(parameters.maxNewTokens, contextLength - prompt.count)
        decoder = text
        random = SeededGenerator(seed: parameters.seed)
        history = prompt
        output = GenerationOutput(promptTokenIds: prompt, tokens: [], text: "", finishReason: .length,
                                  timings: GenerationTimings(promptTokens: prompt.count))
    }

    /// Chooses the next token from the model's logits and updates the stop state.
    mutating func choose(_ logits: [Float]) throws -> GeneratedToken {
        // A NaN would make every comparison false and pick token 0 (or a random one) without a word.
        guard logits.allSatisfy(\.isFinite) else { throw GenerationError.nonFiniteLogits(step: output.tokens.count) }
        var scores = logits
        LogitsProcessors.process(&scores, history: history, generatedCount: output.tokens.count, parameters: parameters)
        let id = parameters.doSample ? Sampler.sample(scores, using: &random) : Sampler.argmax(scores)
        let logprobs = LogitsProcessors.logSoftmax(scores)
        let token = GeneratedToken(id: id, text: decoder.append(id), logprob: logprobs[id],
                                   top: LogitsProcessors.largest(parameters.topLogprobs, of: logprobs))
        history.append(id)
        output.tokens.append(token)
        output.text += token.text
        if parameters.eosTokenIds.contains(id) {
            finish = .eosToken
        } else if parameters.stopStrings.contains(where: { output.text.contains($0) }) {
            finish = .stopSequence
        } else if output.tokens.count >= limit {
            finish = .length
        }
        return token
    }

    mutating func finalize(prefillSeconds: Double, decodeSeconds: Double) -> GenerationOutput {
        output.text += decoder.flush()
        output.finishReason = finish ?? .length
        output.timings.prefillSeconds = prefillSeconds
        output.timings.decodeSeconds = decodeSeconds
        output.timings.generatedTokens = output.tokens.count
        return output
    }
}

public enum Generator {
    /// Generates after `prompt` with transformers' semantics: the logits processors of `parameters`, then greedy
    /// choice or seeded sampling; stops at an end-of-sequence token, a stop string in the text, `maxNewTokens`, or
    /// the model's context length. `onToken` sees every token as it is chosen; returning false stops early.
    public static func generate<Model: NextTokenModel, Text: IncrementalTextDecoder>(
        model: inout Model, prompt: [Int], parameters: GenerationParameters, text decoder: Text,
        onToken: (GeneratedToken) -> Bool = { _ in true }
    ) throws -> GenerationOutput {
        try refusePromptLogprobs(parameters)
        var state = try SequenceState(prompt: prompt, contextLength: model.contextLength, parameters: parameters,
                                      text: decoder)
        model.reserve(positions: prompt.count + state.limit)
        let clock = ContinuousClock()
        var start = clock.now
        var logits = try model.prefill(prompt)
        state.output.timings.reusedPromptTokens = model.reusedPromptTokens
        let prefillSeconds = (clock.now - start).seconds
        start = clock.now
        while state.finish == nil {
            let token = try state.choose(logits)
            if !onToken(token), state.finish == nil { state.finish = .length }
            if state.finish == nil { logits = try model.logits(after: [token.id]) }
        }
        return state.finalize(prefillSeconds: prefillSeconds, decodeSeconds: (clock.now - start).seconds)
    }

    /// Generates for several prompts together: each step runs the unfinished rows in one batched model call.
    /// Every row's tokens equal what `generate` gives it alone. `onToken` gets (row, token); false stops that row.
    public static func generate<Session: BatchedNextTokenModel, Text: IncrementalTextDecoder>(
        batch sessions: inout [Session], prompts: [[Int]], parameters: [GenerationParameters], text: [Text],
        onToken: (Int, GeneratedToken) -> Bool = { _, _ in true }
    ) throws -> [GenerationOutput] {
        precondition(sessions.count == prompts.count && prompts.count == parameters.count && text.count == prompts.count,
                     "one session, prompt, parameter set and text decoder per row")
        try parameters.forEach(refusePromptLogprobs)
        var states = try prompts.indices.map {
            try SequenceState(prompt: prompts[$0], contextLength: sessions[$0].contextLength,
                              parameters: parameters[$0], text: text[$0])
        }
        for row in sessions.indices { sessions[row].reserve(positions: prompts[row].count + states[row].limit) }
        let clock = ContinuousClock()
        var start = clock.now
        var logits = try Session.prefill(&sessions, prompts: prompts)
        for row in states.indices { states[row].output.timings.reusedPromptTokens = sessions[row].reusedPromptTokens }
        let prefillSeconds = (clock.now - start).seconds
        start = clock.now
        var active = Array(prompts.indices)
        while !active.isEmpty {
            var next = [Int]()
            for (slot, row) in active.enumerated() {
                let token = try states[row].choose(logits[slot])
                if !onToken(row, token), states[row].finish == nil { states[row].finish = .length }
                if states[row].finish == nil { next.append(row) }
            }
            active = next
            if !active.isEmpty {
                logits = try Session.step(&sessions, rows: active,
                                                 tokens: active.map { [states[$0].history.last!] })
            }
        }
        let decodeSeconds = (clock.now - start).seconds
        return states.indices.map { states[$0].finalize(prefillSeconds: prefillSeconds, decodeSeconds: decodeSeconds) }
    }

    /// Prompt log-probabilities need every prompt position's logits, which only `ContinuousBatch` asks the model for.
    private static func refusePromptLogprobs(_ parameters: GenerationParameters) throws {
        guard parameters.promptLogprobs else { return }
        throw GenerationError.invalidParameter(name: "prompt_logprobs", value: "true",
                                               allowed: "false here: ContinuousBatch (the server's engine) computes them")
    }
}
