import Foundation
import IdeficsCheckpoint
import IdeficsImages

extension Idefics2ImageProcessor {
    /// The processor a checkpoint folder configures: its preprocessor_config.json, transformers' defaults without one.
    /// The folder's `preprocessor_config.json` read over `defaults` (Idefics2's unless given), or the defaults.
    public init(checkpointDirectory directory: URL, defaults: Idefics2ImageProcessorConfig = .init()) throws {
        let file = directory.appendingPathComponent("preprocessor_config.json")
        guard FileManager.default.fileExists(atPath: file.path) else {
            self.init(config: defaults)
            return
        }
        self.init(config: try Idefics2ImageProcessorConfig(contentsOf: file, defaults: defaults))
    }
}

extension ProcessedBatch {
    /// The batch as transformers returns it, for a safetensors file: `pixel_values` F32
    /// `[batch, images, 3, height, width]` and `pixel_attention_mask` U8 `[batch, images, height, width]`
    /// (transformers' mask is int64 and only ever 0 or 1).
    public func safetensors(metadata: [String: String] = [:]) throws -> SafetensorsWriter {
        var writer = SafetensorsWriter(metadata: metadata)
        try writer.add("pixel_values", shape: [batchSize, maxImages, 3, height, width], floats: pixelValues)
        try writer.add("pixel_attention_mask", shape: [batchSize, maxImages, height, width],
                       uint8s: pixelAttentionMask)
        return writer
    }
}
