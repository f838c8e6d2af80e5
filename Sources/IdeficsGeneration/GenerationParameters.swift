/// Why generation stopped, named as TGI names it.
public enum FinishReason: String, Sendable, Codable {
    case length
    case eosToken = "eos_token"
    case stopSequence = "stop_sequence"
}

public struct GenerationError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
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
        try validate()
    }

    private func validate() throws {
        guard maxNewTokens > 0 else { throw GenerationError("max_new_tokens must be > 0 (got \(maxNewTokens))") }
        guard minNewTokens >= 0 else { throw GenerationError("min_new_tokens must be >= 0 (got \(minNewTokens))") }
        guard temperature > 0, temperature.isFinite else { throw GenerationError("temperature must be > 0 (got \(temperature))") }
        guard topK >= 0 else { throw GenerationError("top_k must be >= 0 (got \(topK))") }
        guard topP > 0, topP <= 1 else { throw GenerationError("top_p must be in (0, 1] (got \(topP))") }
        guard typicalP > 0, typicalP <= 1 else { throw GenerationError("typical_p must be in (0, 1] (got \(typicalP))") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else {
            throw GenerationError("repetition_penalty must be > 0 (got \(repetitionPenalty))")
        }
        guard !stopStrings.contains("") else { throw GenerationError("stop strings must not be empty") }
        guard !badWordsIds.contains([]) else { throw GenerationError("bad_words_ids must not contain an empty sequence") }
    }
}
