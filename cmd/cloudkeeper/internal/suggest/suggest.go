// Package suggest finds what a mistyped word was meant to be: the command
// or flag name closest to it, if one is close enough to be a typo.
package suggest

// Closest returns the candidate nearest to word, or "" if none is near:
// at most one edit (an insertion, a deletion, a substitution, or two
// neighbours swapped, as in "sycn" for "sync") for a word of up to four
// letters, two for a longer one. A word of one or two letters is near
// too much to tell: it has none. A tie goes to the first candidate.
func Closest(word string, candidates []string) string {
	if len([]rune(word)) < 3 {
		return ""
	}
	limit := 1
	if len([]rune(word)) > 4 {
		limit = 2
	}
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if d := distance(word, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// distance is the optimal string alignment distance between a and b:
// the edits of Levenshtein plus the swap of two adjacent characters.
func distance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// d[i][j] is the distance between s[:i] and t[:j].
	d := make([][]int, len(s)+1)
	for i := range d {
		d[i] = make([]int, len(t)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(s); i++ {
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(s)][len(t)]
}
