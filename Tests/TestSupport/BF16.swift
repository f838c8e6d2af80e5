/// x rounded to the nearest bf16 value, ties to the one with an even last bit, by distance (past the largest finite
/// bf16 plus half a step: infinity, as IEEE rounding does); NaN stays NaN.
public func nearestBF16(_ x: Float) -> Float {
    guard x.isFinite else { return x }
    let toward = Float(bitPattern: x.bitPattern & 0xffff_0000)
    guard toward != x else { return x }
    let away = Float(bitPattern: toward.bitPattern &+ 0x1_0000) // the next bf16 from zero (infinity after the largest)
    let awayValue = away.isInfinite ? (x < 0 ? -0x1p128 : 0x1p128) : Double(away)
    let (towardDistance, awayDistance) = (abs(Double(x) - Double(toward)), abs(awayValue - Double(x)))
    if towardDistance != awayDistance { return towardDistance < awayDistance ? toward : away }
    return toward.bitPattern & 0x1_0000 == 0 ? toward : away
}
