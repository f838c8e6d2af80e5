/// Why generation stopped, named as TGI names it.
public enum FinishReason: String, Sendable, Codable {
    case length
    case eosToken = "eos_token"
    case stopSequence = "stop_sequence"
}

/// What one request asks for; nil fields fall back to the checkpoint's generation config.
/// Setting any sampling field (temperature, top-k, top-p, typical-p, seed) turns sampling on, as in TGI.
public struct GenerationRequest: Sendable, Equatable {
    public var maxNewTokens: Int?
    public var minNewTokens: Int?
    public var doSample: Bool?
    public var temperature: Float?
    public var topK: Int?
    public var topP: Float?
    public var typicalP: Float?
    public var repetitionPenalty: Float?
    public var seed: UInt64?
    public var stopStrings: [String] = []
    public var badWordsIds: [[Int]]?
    public var eosTokenIds: [Int]?
    /// How many of the most likely alternatives each generated token reports (`GeneratedToken.top`); nil: none.
    public var topLogprobs: Int?
    /// Whether the output reports every prompt token's log-probability (`GenerationOutput.promptLogprobs`): the
    /// whole prompt is then computed, none of it taken from a cache. Only `ContinuousBatch` (the server's engine)
    /// computes them; `Generator.generate` refuses the request.
    public var promptLogprobs: Bool?
    /// Additive penalties on the tokens already seen (OpenAI's or TGI's frequency and presence penalties); nil: none.
    public var occurrencePenalty: OccurrencePenalty?

    public init(maxNewTokens: Int? = nil, minNewTokens: Int? = nil, doSample: Bool? = nil, temperature: Float? = nil, topK: Int? = nil,
                topP: Float? = nil, typicalP: Float? = nil, repetitionPenalty: Float? = nil, seed: UInt64? = nil,
                stopStrings: [String] = [], badWordsIds: [[Int]]? = nil, eosTokenIds: [Int]? = nil) {
        self.maxNewTokens = maxNewTokens
        self.minNewTokens = minNewTokens
        self.doSample = doSample
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.typicalP = typicalP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
        self.stopStrings = stopStrings
        self.badWordsIds = badWordsIds
        self.eosTokenIds = eosTokenIds
    }
}

/// Penalties subtracted from the logits of tokens already seen, after the repetition penalty (TGI's order). Two
/// conventions are in use and they differ: OpenAI's (and vLLM's) counts the generated tokens only, TGI's
/// `frequency_penalty` (its `HeterogeneousFrequencyPenaltyLogitsProcessor`) the whole sequence, prompt included,
/// as a share of its length. Each value is in [-2, 2]; a negative one favours repeats.
public enum OccurrencePenalty: Sendable, Equatable {
    /// Each token generated so far loses `frequency` times its count, and `presence` once.
    case openAI(frequency: Float, presence: Float)
    /// Each token of the sequence so far loses `frequency` times the fraction of the sequence it makes up.
    case tgi(frequency: Float)

    public static let range: ClosedRange<Float> = -2...2
}

/// The fully resolved, validated settings of one generation.
public struct GenerationParameters: Sendable, Equatable {
    public static let defaultMaxNewTokens = 512

    public var maxNewTokens: Int
    public var minNewTokens: Int
    public var doSample: Bool
    public var temperature: Float
    public var topK: Int
    public var topP: Float
    public var typicalP: Float
    public var repetitionPenalty: Float
    public var seed: UInt64
    public var stopStrings: [String]
    public var badWordsIds: [[Int]]
    public var eosTokenIds: [Int]
    public var topLogprobs: Int
    public var promptLogprobs: Bool
    public var occurrencePenalty: OccurrencePenalty?

    public init(request: GenerationRequest = .init(), config: GenerationConfig = .init(), defaultSeed: UInt64 = 0) throws {
        let samplingAsked = request.temperature != nil || request.topK != nil || request.topP != nil
            || request.typicalP != nil || request.seed != nil
        maxNewTokens = request.maxNewTokens ?? config.maxNewTokens ?? Self.defaultMaxNewTokens
        minNewTokens = request.minNewTokens ?? config.minNewTokens
        doSample = request.doSample ?? (samplingAsked || config.doSample)
        temperature = request.temperature ?? config.temperature
        topK = request.topK ?? config.topK
        topP = request.topP ?? config.topP
        typicalP = request.typicalP ?? config.typicalP
        repetitionPenalty = request.repetitionPenalty ?? config.repetitionPenalty
        seed = request.seed ?? defaultSeed
        stopStrings = request.stopStrings
        badWordsIds = request.badWordsIds ?? config.badWordsIds
        eosTokenIds = request.eosTokenIds ?? config.eosTokenIds
        topLogprobs = request.topLogprobs ?? 0
        promptLogprobs = request.promptLogprobs ?? false
        occurrencePenalty = request.occurrencePenalty
        try validate()
    }

    /// Every value in range; the sampling ones only when sampling (a greedy run ignores them, as transformers does).
    private func validate() throws {
        try Self.checkRanges(maxNewTokens: maxNewTokens, minNewTokens: minNewTokens,
                             temperature: doSample ? temperature : nil, topK: doSample ? topK : nil,
                             topP: doSample ? topP : nil, typicalP: doSample ? typicalP : nil,
                             repetitionPenalty: repetitionPenalty, stopStrings: stopStrings,
                             occurrencePenalty: occurrencePenalty)
        try Self.check("top_logprobs", topLogprobs, 0...Self.maxTopLogprobs)
        guard !badWordsIds.contains([]) else {
            throw GenerationError.invalidParameter(name: "bad_words_ids", value: "[]", allowed: "non-empty sequences")
        }
    }
}

extension GenerationParameters {
    /// The ranges values are checked against. Temperatures below 1e-4 and penalties outside [1e-3, 1e3] turn
    /// float32 logits into infinities (use greedy decoding instead of a near-zero temperature).
    public static let maxNewTokensLimit = 1 << 20
    /// OpenAI's limit on `top_logprobs`.
    public static let maxTopLogprobs = 20
    public static let temperatureRange: ClosedRange<Float> = 1e-4...1e4
    public static let penaltyRange: ClosedRange<Float> = 1e-3...1e3
    /// (0, 1]: the smallest positive float stands for the open end.
    public static let probabilityRange: ClosedRange<Float> = Float.leastNonzeroMagnitude...1

    /// The range checks a request and a resolved set of parameters share; nil values are not checked.
    static func checkRanges(maxNewTokens: Int?, minNewTokens: Int?, temperature: Float?, topK: Int?, topP: Float?,
                            typicalP: Float?, repetitionPenalty: Float?, stopStrings: [String],
                            occurrencePenalty: OccurrencePenalty?) throws {
        try check("max_new_tokens", maxNewTokens, 1...maxNewTokensLimit)
        try check("min_new_tokens", minNewTokens, 0...maxNewTokensLimit)
        try check("temperature", temperature, temperatureRange)
        try check("top_k", topK, 0...Int(Int32.max))
        try check("top_p", topP, probabilityRange)
        try check("typical_p", typicalP, probabilityRange)
        try check("repetition_penalty", repetitionPenalty, penaltyRange)
        switch occurrencePenalty {
        case .openAI(let frequency, let presence):
            try check("frequency_penalty", frequency, OccurrencePenalty.range)
            try check("presence_penalty", presence, OccurrencePenalty.range)
        case .tgi(let frequency): try check("frequency_penalty", frequency, OccurrencePenalty.range)
        case nil: break
        }
        if stopStrings.contains("") {
            throw GenerationError.invalidParameter(name: "stop", value: "\"\"", allowed: "a non-empty string")
        }
    }

    private static func check<T: Comparable & CustomStringConvertible>(_ name: String, _ value: T?,
                                                                       _ allowed: ClosedRange<T>) throws {
        guard let value, !allowed.contains(value) else { return }
        let range = T.self == Float.self && allowed.lowerBound == Float.leastNonzeroMagnitude as? T
            ? "(0, \(allowed.upperBound)]" : "[\(allowed.lowerBound), \(allowed.upperBound)]"
        throw GenerationError.invalidParameter(name: name, value: "\(value)", allowed: range)
    }
}

extension GenerationRequest {
    /// Checks the values the request sets, without a checkpoint's defaults: a front end calls it before any work.
    public func validate() throws {
        try GenerationParameters.checkRanges(maxNewTokens: maxNewTokens, minNewTokens: minNewTokens,
                                             temperature: temperature, topK: topK, topP: topP, typicalP: typicalP,
                                             repetitionPenalty: repetitionPenalty, stopStrings: stopStrings,
                                             occurrencePenalty: occurrencePenalty)
    }
}
