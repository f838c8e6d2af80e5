/// The decoder's hyper-parameters (`text_config` of an Idefics2 config.json, or a Mistral config.json).
public struct MistralConfig: Decodable, Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var keyValueHeadCount: Int
    public var headDim: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var slidingWindow: Int?
    public var maxPositionEmbeddings: Int

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case layerCount = "num_hidden_layers", headCount = "num_attention_heads"
        case keyValueHeadCount = "num_key_value_heads", headDim = "head_dim", rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta", ropeParameters = "rope_parameters", slidingWindow = "sliding_window"
        case maxPositionEmbeddings = "max_position_embeddings", hiddenAct = "hidden_act"
    }

    struct RopeParameters: Decodable {
        var rope_theta: Double?
        var rope_type: String?
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        layerCount = try c.decode(Int.self, forKey: .layerCount)
        headCount = try c.decode(Int.self, forKey: .headCount)
        keyValueHeadCount = try c.decodeIfPresent(Int.self, forKey: .keyValueHeadCount) ?? headCount
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim) ?? hiddenSize / headCount
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-6
        // transformers' MistralConfig defaults to a 4096 window when the key is absent; an explicit null disables it.
        slidingWindow = c.contains(.slidingWindow) ? try c.decodeIfPresent(Int.self, forKey: .slidingWindow) : 4096
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 32768
        // transformers 5 moved rope_theta into rope_parameters; older files keep it at the top level.
        let rope = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)
        if let type = rope?.rope_type, type != "default" {
            throw DecodingError.dataCorruptedError(forKey: .ropeParameters, in: c,
                                                   debugDescription: "rope_type \(type) is not supported (only default)")
        }
        ropeTheta = try rope?.rope_theta ?? c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? 10000
        let activation = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        guard activation == "silu" else {
            throw DecodingError.dataCorruptedError(forKey: .hiddenAct, in: c,
                                                   debugDescription: "hidden_act \(activation) is not supported (only silu)")
        }
        guard headCount % keyValueHeadCount == 0 else {
            throw DecodingError.dataCorruptedError(forKey: .keyValueHeadCount, in: c,
                                                   debugDescription: "num_attention_heads \(headCount) is not a multiple of num_key_value_heads \(keyValueHeadCount)")
        }
    }
}
