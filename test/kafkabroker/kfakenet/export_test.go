package kfakenet

// ExpectsAnswer is expectsAnswer, for the tests.
var ExpectsAnswer = expectsAnswer
