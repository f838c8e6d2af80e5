enum JPEGDecoder {
    static func decode(_ bytes: [UInt8], limits: ImageLimits) throws -> DecodedImage {
        throw DecodeFailure(.unsupported, "JPEG is not supported yet")
    }
}
