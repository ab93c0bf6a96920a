"""The machinery behind some graders: the formula interpreter, local rules, similarity
metrics and the python grader's isolated child process."""
