@_exported import Idefics

/// Small limits: the fuzzer should find logic bugs, not spend its time allocating what the limits allow.
public let fuzzLimits = ImageLimits(maxPixels: 512 * 512, maxDimension: 8192)

/// The input with `magic` in front unless it already starts with it, so every mutation reaches the decoder
/// that the target is for instead of failing format detection.
public func withMagic(_ magic: [UInt8], _ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    return bytes.starts(with: magic) ? bytes : magic + bytes
}

/// Decodes and converts to RGB; decode errors are the expected outcome for most inputs.
public func fuzzDecode(_ bytes: [UInt8]) {
    guard let image = try? ImageDecoder.decode(bytes, limits: fuzzLimits) else { return }
    let rgb = image.rgb(transparency: .compositeOnWhite).applyingOrientation(image.orientation)
    precondition(rgb.pixels.count == rgb.width * rgb.height * 3, "RGB buffer does not match its size")
}
