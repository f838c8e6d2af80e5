/// An 8-bit RGB image, row-major, interleaved (`pixels[(y * width + x) * 3 + channel]`): the form the Idefics2
/// processor works on (numpy `HWC` uint8 after `convert_to_rgb`).
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height * 3, "invalid RGB image buffer")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The rectangle `[x, x + width) x [y, y + height)` as a new image.
    public func cropped(x: Int, y: Int, width cropWidth: Int, height cropHeight: Int) -> RGBImage {
        precondition(x >= 0 && y >= 0 && cropWidth > 0 && cropHeight > 0 && x + cropWidth <= width
                     && y + cropHeight <= height, "crop outside the image")
        var out = [UInt8]()
        out.reserveCapacity(cropWidth * cropHeight * 3)
        for row in y..<(y + cropHeight) {
            let start = (row * width + x) * 3
            out.append(contentsOf: pixels[start..<(start + cropWidth * 3)])
        }
        return RGBImage(width: cropWidth, height: cropHeight, pixels: out)
    }

    /// Applies an EXIF orientation (1...8) the way `PIL.ImageOps.exif_transpose` does, giving the upright image.
    public func applyingOrientation(_ orientation: Int) -> RGBImage {
        guard (2...8).contains(orientation) else { return self }
        let swaps = orientation >= 5
        let outWidth = swaps ? height : width, outHeight = swaps ? width : height
        var out = [UInt8](repeating: 0, count: pixels.count)
        for oy in 0..<outHeight {
            for ox in 0..<outWidth {
                let (sx, sy): (Int, Int)
                switch orientation {
                case 2: (sx, sy) = (width - 1 - ox, oy)               // FLIP_LEFT_RIGHT
                case 3: (sx, sy) = (width - 1 - ox, height - 1 - oy)  // ROTATE_180
                case 4: (sx, sy) = (ox, height - 1 - oy)              // FLIP_TOP_BOTTOM
                case 5: (sx, sy) = (oy, ox)                           // TRANSPOSE
                case 6: (sx, sy) = (oy, height - 1 - ox)              // ROTATE_270 (clockwise)
                case 7: (sx, sy) = (width - 1 - oy, height - 1 - ox)  // TRANSVERSE
                default: (sx, sy) = (width - 1 - oy, ox)              // ROTATE_90 (counter-clockwise)
                }
                let s = (sy * width + sx) * 3, d = (oy * outWidth + ox) * 3
                out[d] = pixels[s]
                out[d + 1] = pixels[s + 1]
                out[d + 2] = pixels[s + 2]
            }
        }
        return RGBImage(width: outWidth, height: outHeight, pixels: out)
    }
}
