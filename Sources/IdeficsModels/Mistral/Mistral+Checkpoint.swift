import IdeficsCheckpoint

extension Mistral {
    /// The decoder of an Idefics2 checkpoint (`text_config`, weights under `model.text_model.`) or of a plain
    /// Mistral / Llama checkpoint (top-level config, weights under `model.`).
    public init(checkpoint: Checkpoint) throws {
        switch try ModelFamily(directory: checkpoint.directory) {
        case .idefics2:
            try self.init(config: Idefics2Config(directory: checkpoint.directory).text, checkpoint: checkpoint,
                          prefix: "model.text_model.")
        case .decoder(let family, let object):
            try self.init(config: MistralConfig(object, family: family), checkpoint: checkpoint, prefix: "model.")
        case .idefics:
            // Its layers are only half of the decoder: the gated cross-attention blocks sit between them.
            throw CheckpointError.invalidConfig(path: checkpoint.directory.appendingPathComponent("config.json").path,
                                                reason: "an Idefics v1 checkpoint: its decoder runs with the gated "
                                                    + "cross-attention blocks (load it with Idefics(checkpoint:) or a Pipeline)")
        }
    }
}
