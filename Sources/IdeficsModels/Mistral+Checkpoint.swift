import IdeficsCheckpoint

extension Mistral {
    /// The decoder of an Idefics2 checkpoint (`text_config`, weights under `model.text_model.`) or of a plain
    /// Mistral checkpoint (top-level config, weights under `model.`).
    public init(checkpoint: Checkpoint) throws {
        let modelType = try checkpoint.jsonObject("config.json")?["model_type"] as? String
        switch modelType {
        case "idefics2":
            let config = try checkpoint.decode(MistralConfig.self, from: "config.json", key: "text_config")
            try self.init(config: config, checkpoint: checkpoint, prefix: "model.text_model.")
        case "mistral", "llama":
            let config = try checkpoint.decode(MistralConfig.self, from: "config.json")
            try self.init(config: config, checkpoint: checkpoint, prefix: "model.")
        default:
            throw CheckpointError.invalidConfig(path: checkpoint.directory.appendingPathComponent("config.json").path,
                                                reason: "model_type \(modelType.map { "\"\($0)\"" } ?? "(missing)") is not supported (idefics2, mistral)")
        }
    }
}
