import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzDecode(withMagic([0xFF, 0xD8, 0xFF], data, size))
    return 0
}
