import Foundation
import Idefics

/// The generation settings of a request, validated by text-generation-inference's rules (its router's
/// validation.rs): the same limits, defaults and messages, each naming its field.
struct GenerateParameters: Sendable {
    var request = GenerationRequest()
    var details = false
    var returnFullText = false
    /// Whether the request samples (so that `details.seed` reports the seed it used): as a TGI request settles it
    /// (`request.doSample`, always set there), else any sampling field set, as `GenerationRequest` reads them.
    var sampling: Bool { request.doSample ?? (samplingFieldSet || request.seed != nil) }
    /// A field that asks for sampling by itself (TGI's `best_of` rule: a seed alone does not).
    private var samplingFieldSet: Bool {
        request.doSample == true || request.topK != nil || request.typicalP != nil || request.temperature != nil
            || request.topP != nil
    }
    /// TGI's `truncate`: the most prompt tokens to keep, the last ones (`PreparedPrompt.keepingLast`).
    var truncate: Int?
    /// TGI's `decoder_input_details`: `details.prefill` lists the prompt's tokens with their log-probabilities.
    var decoderInputDetails = false
    /// `frequency_penalty`, read by `setCommon`; each route settles what it means (`request.occurrencePenalty`).
    var frequencyPenalty: Float = 0
    /// TGI's `best_of`: sampled runs of which the answer is the one with the highest mean token log-probability.
    var bestOf = 1

    static let maxStopSequences = 4
    static let maxTopNTokens = 5

    init() {}

    /// OpenAI's `presence_penalty` beside the frequency penalty `setCommon` read: both count the generated tokens
    /// (TGI's own chat route turns `presence_penalty` into a repetition penalty of presence + 2 instead).
    mutating func setOpenAIPenalties(_ body: JSONFields) throws(ServerError) {
        let presence = try body.double("presence_penalty") ?? 0
        guard (-2...2).contains(presence) else { throw .validation("`presence_penalty` must be >= -2.0 and <= 2.0") }
        if frequencyPenalty != 0 || presence != 0 {
            request.occurrencePenalty = .openAI(frequency: frequencyPenalty, presence: Float(presence))
        }
    }

    /// TGI's `parameters` object.
    init(tgi p: JSONFields?, limits: ServerLimits) throws(ServerError) {
        defer { settleTGISampling() }
        guard let p else { return }
        if let bestOf = try p.int("best_of") {
            guard (1...limits.maxBestOf).contains(bestOf) else {
                throw .validation("`best_of` must be > 0 and <= \(limits.maxBestOf). Given: \(bestOf)")
            }
            self.bestOf = bestOf
        }
        try setCommon(p, maxTokensKey: "max_new_tokens", stopKey: "stop")
        if frequencyPenalty != 0 { request.occurrencePenalty = .tgi(frequency: frequencyPenalty) }
        if let doSample = try p.bool("do_sample") { request.doSample = doSample }
        if let topK = try p.int("top_k") {
            guard topK > 0 else { throw .validation("`top_k` must be strictly positive") }
            request.topK = topK
        }
        if let typicalP = try p.double("typical_p") {
            guard typicalP > 0, typicalP < 1 else { throw .validation("`typical_p` must be > 0.0 and < 1.0") }
            request.typicalP = Float(typicalP)
        }
        if let penalty = try p.double("repetition_penalty") {
            guard penalty > 0 else { throw .validation("`repetition_penalty` must be strictly positive") }
            request.repetitionPenalty = Float(penalty)
        }
        if let topN = try p.int("top_n_tokens") {
            guard (0...Self.maxTopNTokens).contains(topN) else {
                throw .validation("`top_n_tokens` must be >= 0 and <= \(Self.maxTopNTokens). Given: \(topN)")
            }
            if topN > 0 { request.topLogprobs = topN }
        }
        if try p.bool("decoder_input_details") == true {
            decoderInputDetails = true
            request.promptLogprobs = true
        }
        for key in ["grammar", "adapter_id"] where p.isPresent(key) {
            throw .validation("`\(key)` is not supported")
        }
        if let truncate = try p.int("truncate") {
            guard truncate > 0, truncate <= limits.maxInputTokens else {
                throw .validation("`truncate` must be strictly positive and less than \(limits.maxInputTokens). Given: \(truncate)")
            }
            self.truncate = truncate
        }
        if bestOf > 1 { // TGI's order: sampling (a seed alone is not), then no seed: each run draws its own
            guard samplingFieldSet else { throw .validation("you must use sampling when `best_of` is > 1") }
            guard request.seed == nil else { throw .validation("`seed` must not be set when `best_of` > 1") }
        }
        _ = try p.bool("watermark")
        details = try p.bool("details") ?? false
        returnFullText = try p.bool("return_full_text") ?? false
    }

    /// TGI's server samples when asked to or when a warper changes the distribution (its `sampling = do_sample or
    /// has_warpers`): a temperature other than 1, a top_k, a top_p or typical_p below 1 sample even beside an
    /// explicit `do_sample: false` (which TGI's Python client always sends), while a seed alone, or nothing, decodes
    /// greedily whatever the checkpoint's generation config says. Before, `do_sample: false` with a temperature and
    /// a seed decoded greedily: a best_of run replayed with its reported seed gave another answer.
    private mutating func settleTGISampling() {
        let warped = request.temperature.map { $0 != 1 } == true || request.topK != nil
            || request.topP.map { $0 < 1 } == true || request.typicalP.map { $0 < 1 } == true
        request.doSample = request.doSample == true || warped
    }

    /// The fields TGI and OpenAI share: temperature, top_p, frequency_penalty (kept in `frequencyPenalty`: the two
    /// count differently), seed, the token budget and stops.
    mutating func setCommon(_ p: JSONFields, maxTokensKey: String, stopKey: String) throws(ServerError) {
        if let temperature = try p.double("temperature") {
            guard temperature > 0 else { throw .validation("`temperature` must be strictly positive") }
            request.temperature = Float(temperature)
        }
        if let topP = try p.double("top_p") {
            guard topP > 0, topP < 1 else { throw .validation("`top_p` must be > 0.0 and < 1.0") }
            request.topP = Float(topP)
        }
        if let penalty = try p.double("frequency_penalty") {
            guard (-2...2).contains(penalty) else { throw .validation("`frequency_penalty` must be >= -2.0 and <= 2.0") }
            frequencyPenalty = Float(penalty)
        }
        if let seed = try p.uint64("seed") { request.seed = seed }
        if let maxNewTokens = try p.int(maxTokensKey) {
            guard maxNewTokens > 0 else { throw .validation("`\(maxTokensKey)` must be strictly positive") }
            request.maxNewTokens = maxNewTokens
        }
        if let stop = try p.strings(stopKey) {
            guard stop.count <= Self.maxStopSequences else {
                throw .validation("`\(stopKey)` supports up to \(Self.maxStopSequences) stop sequences. Given: \(stop.count)")
            }
            guard !stop.contains("") else { throw .validation("`\(stopKey)` sequences cannot be empty") }
            request.stopStrings = stop
        }
    }

    /// Settles the token budget once the prompt is known: a missing max_new_tokens takes what the total limit leaves
    /// (as TGI does); a prompt or total past the limits is refused with TGI's wording.
    mutating func fit(promptTokens: Int, limits: ServerLimits) throws(ServerError) {
        guard promptTokens <= limits.maxInputTokens else {
            throw .validation("Input validation error: `inputs` must have less than \(limits.maxInputTokens) tokens. "
                              + "Given: \(promptTokens)")
        }
        let maxNew = request.maxNewTokens ?? max(1, limits.maxTotalTokens - promptTokens)
        guard promptTokens + maxNew <= limits.maxTotalTokens else {
            throw .validation("Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
                              + "\(limits.maxTotalTokens). Given: \(promptTokens) `inputs` tokens and \(maxNew) `max_new_tokens`")
        }
        request.maxNewTokens = maxNew
    }
}

extension PreparedPrompt {
    /// The last `count` tokens, as TGI's `truncate` keeps them; each `<image>` token left keeps its own image vector
    /// (Idefics2) or image states (Idefics v1: one `<image>` token per image); those of the image tokens cut are
    /// dropped from the front.
    func keepingLast(_ count: Int, imageTokenId: Int?, hidden: Int) -> PreparedPrompt {
        guard ids.count > count else { return self }
        let cut = ids.count - count
        let cutImages = imageTokenId.map { id in ids[..<cut].lazy.filter { $0 == id }.count } ?? 0
        return PreparedPrompt(ids: Array(ids[cut...]), imageRows: Array(imageRows.dropFirst(cutImages * hidden)),
                              imageStates: Array(imageStates.dropFirst(cutImages)))
    }
}

/// What a server accepts.
public struct ServerLimits: Sendable {
    public var maxInputTokens: Int
    public var maxTotalTokens: Int
    public var maxConcurrentRequests: Int
    /// Most requests in one decode step.
    public var maxBatchSize: Int
    public var maxBodyBytes: Int
    public var maxImagesPerRequest: Int
    /// Most runs of one TGI `best_of` request (TGI's `--max-best-of`, 2 by default).
    public var maxBestOf: Int

    public init(maxInputTokens: Int = 4095, maxTotalTokens: Int = 4096, maxConcurrentRequests: Int = 128,
                maxBatchSize: Int = 32, maxBodyBytes: Int = 20 << 20, maxImagesPerRequest: Int = 8, maxBestOf: Int = 2) {
        self.maxInputTokens = maxInputTokens
        self.maxTotalTokens = maxTotalTokens
        self.maxConcurrentRequests = maxConcurrentRequests
        self.maxBatchSize = maxBatchSize
        self.maxBodyBytes = maxBodyBytes
        self.maxImagesPerRequest = maxImagesPerRequest
        self.maxBestOf = maxBestOf
    }
}
