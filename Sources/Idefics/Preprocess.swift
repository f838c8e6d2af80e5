import Foundation
import IdeficsCheckpoint
import IdeficsImages
import IdeficsModels

extension Idefics2ImageProcessor {
    /// The folder's `preprocessor_config.json` read over its family's defaults (`IdeficsImageProcessorPil`'s for an
    /// Idefics v1 folder, sized by its vision tower; Idefics2's otherwise), or those defaults.
    public init(checkpointDirectory directory: URL) throws {
        var defaults = Idefics2ImageProcessorConfig()
        if case .idefics? = try? ModelFamily(directory: directory) {
            defaults = .ideficsV1(imageSize: try IdeficsConfig(directory: directory).vision.imageSize)
        }
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
