/// A checkpoint's `generation_config.json`: the defaults that transformers' `generate` starts from.
/// Fields a file leaves out take transformers' global defaults.
public struct GenerationConfig: Decodable, Sendable, Equatable {
    public var eosTokenIds: [Int] = []
    public var padTokenId: Int?
    public var maxNewTokens: Int?
    public var minNewTokens = 0
    public var maxLength: Int?
    public var doSample = false
    public var temperature: Float = 1
    public var topK = 50
    public var topP: Float = 1
    public var typicalP: Float = 1
    public var repetitionPenalty: Float = 1
    public var badWordsIds: [[Int]] = []

    public init() {}

    enum CodingKeys: String, CodingKey {
        case eosTokenId = "eos_token_id", padTokenId = "pad_token_id", maxNewTokens = "max_new_tokens", minNewTokens = "min_new_tokens"
        case maxLength = "max_length", doSample = "do_sample", temperature, topK = "top_k", topP = "top_p"
        case typicalP = "typical_p", repetitionPenalty = "repetition_penalty", badWordsIds = "bad_words_ids"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let single = try? c.decodeIfPresent(Int.self, forKey: .eosTokenId) {
            eosTokenIds = [single]
        } else {
            eosTokenIds = try c.decodeIfPresent([Int].self, forKey: .eosTokenId) ?? []
        }
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId)
        maxNewTokens = try c.decodeIfPresent(Int.self, forKey: .maxNewTokens)
        minNewTokens = try c.decodeIfPresent(Int.self, forKey: .minNewTokens) ?? 0
        maxLength = try c.decodeIfPresent(Int.self, forKey: .maxLength)
        doSample = try c.decodeIfPresent(Bool.self, forKey: .doSample) ?? doSample
        temperature = try c.decodeIfPresent(Float.self, forKey: .temperature) ?? temperature
        topK = try c.decodeIfPresent(Int.self, forKey: .topK) ?? topK
        topP = try c.decodeIfPresent(Float.self, forKey: .topP) ?? topP
        typicalP = try c.decodeIfPresent(Float.self, forKey: .typicalP) ?? typicalP
        repetitionPenalty = try c.decodeIfPresent(Float.self, forKey: .repetitionPenalty) ?? repetitionPenalty
        badWordsIds = try c.decodeIfPresent([[Int]].self, forKey: .badWordsIds) ?? []
    }
}
