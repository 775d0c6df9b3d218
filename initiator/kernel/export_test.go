package kernel

// Exported for the fuzz test in this package's external tests.
var (
	ParseReply = parseReply
	ParseStat  = parseStat
)
