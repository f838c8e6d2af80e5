import IdeficsCheckpoint

/// The SigLIP vision tower's hyper-parameters (`vision_config`).
public struct VisionConfig: Decodable, Sendable, Equatable {
    public var hiddenSize = 768
    public var intermediateSize = 3072
    public var layerCount = 12
    public var headCount = 12
    public var channelCount = 3
    public var imageSize = 224
    public var patchSize = 32
    public var layerNormEps: Float = 1e-6

    /// Side of the learned position grid (70 for idefics2-8b's 980 px / 14 px patches).
    public var patchesPerSide: Int { imageSize / patchSize }

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size", intermediateSize = "intermediate_size", layerCount = "num_hidden_layers"
        case headCount = "num_attention_heads", channelCount = "num_channels", imageSize = "image_size"
        case patchSize = "patch_size", layerNormEps = "layer_norm_eps", hiddenAct = "hidden_act"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? intermediateSize
        layerCount = try c.decodeIfPresent(Int.self, forKey: .layerCount) ?? layerCount
        headCount = try c.decodeIfPresent(Int.self, forKey: .headCount) ?? headCount
        channelCount = try c.decodeIfPresent(Int.self, forKey: .channelCount) ?? channelCount
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? imageSize
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? patchSize
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? layerNormEps
        let activation = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "gelu_pytorch_tanh"
        guard activation == "gelu_pytorch_tanh" else {
            throw DecodingError.dataCorruptedError(forKey: .hiddenAct, in: c,
                                                   debugDescription: "hidden_act \(activation) is not supported (only gelu_pytorch_tanh)")
        }
    }
}

/// The perceiver resampler's hyper-parameters (`perceiver_config`).
public struct PerceiverConfig: Decodable, Sendable, Equatable {
    public var hiddenSize = 4096
    public var latentCount = 64
    public var depth = 3
    public var headCount = 16
    public var headDim = 96
    public var keyValueHeadCount = 4
    public var rmsNormEps: Float = 1e-6

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size", latentCount = "resampler_n_latents", depth = "resampler_depth"
        case headCount = "resampler_n_heads", headDim = "resampler_head_dim", keyValueHeadCount = "num_key_value_heads"
        case rmsNormEps = "rms_norm_eps", hiddenAct = "hidden_act"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? hiddenSize
        latentCount = try c.decodeIfPresent(Int.self, forKey: .latentCount) ?? latentCount
        depth = try c.decodeIfPresent(Int.self, forKey: .depth) ?? depth
        headCount = try c.decodeIfPresent(Int.self, forKey: .headCount) ?? headCount
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim) ?? headDim
        keyValueHeadCount = try c.decodeIfPresent(Int.self, forKey: .keyValueHeadCount) ?? keyValueHeadCount
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? rmsNormEps
        let activation = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        guard activation == "silu" else {
            throw DecodingError.dataCorruptedError(forKey: .hiddenAct, in: c,
                                                   debugDescription: "hidden_act \(activation) is not supported (only silu)")
        }
    }
}

/// An Idefics2 config.json, with the defaulting rules of transformers 5.23's `Idefics2Config`.
public struct Idefics2Config: Sendable, Equatable {
    public var text: MistralConfig
    public var vision: VisionConfig
    public var perceiver: PerceiverConfig
    public var imageTokenId: Int

    public init(checkpoint: Checkpoint) throws {
        let path = checkpoint.directory.appendingPathComponent("config.json").path
        guard let json = try checkpoint.jsonObject("config.json") else {
            throw CheckpointError.missingFile(path: path, reason: "required by Idefics2")
        }
        guard json["model_type"] as? String == "idefics2" else {
            throw CheckpointError.invalidConfig(path: path, reason: "model_type is not \"idefics2\"")
        }
        text = try checkpoint.decode(MistralConfig.self, from: "config.json", key: "text_config")
        // Idefics2Config gives its text model rms_norm_eps 1e-5 when the file does not say.
        if (json["text_config"] as? [String: Any])?["rms_norm_eps"] == nil { text.rmsNormEps = 1e-5 }
        vision = try checkpoint.decode(VisionConfig.self, from: "config.json", key: "vision_config")
        perceiver = try checkpoint.decode(PerceiverConfig.self, from: "config.json", key: "perceiver_config")
        // transformers 5.23: a perceiver whose width differs from the text model's takes the text width and eps.
        if perceiver.hiddenSize != text.hiddenSize {
            perceiver.hiddenSize = text.hiddenSize
            perceiver.rmsNormEps = text.rmsNormEps
        }
        imageTokenId = json["image_token_id"] as? Int ?? 32001
    }
}
