import FuzzSupport

/// Splitting on and small edges keep each run cheap while covering crop, resize, rescale and normalize.
let processor: Idefics2ImageProcessor = {
    var config = Idefics2ImageProcessorConfig()
    config.doImageSplitting = true
    config.shortestEdge = 8
    config.longestEdge = 48
    return Idefics2ImageProcessor(config: config)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let source = ImageSource.bytes(Array(UnsafeBufferPointer(start: data, count: size)), name: "fuzz input")
    guard let image = try? ImageDecoder.loadRGB(source, options: ImageLoadOptions(limits: fuzzLimits)),
          let processed = try? processor.process(image) else { return 0 }
    for crop in processed {
        precondition(crop.values.count == 3 * crop.height * crop.width, "pixel values do not match their size")
        precondition(crop.height <= 48 && crop.width <= 48, "resize exceeded longest_edge")
    }
    return 0
}
