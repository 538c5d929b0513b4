package lib

// Answer is the answer.
const Answer = 42
